-- Where a blob lies when that is not its content address: a multipart upload completed in place
-- (`blobs/uploaded/<upload id>`), verified there and never copied. NULL: the content address.
ALTER TABLE blobs ADD COLUMN location TEXT;
