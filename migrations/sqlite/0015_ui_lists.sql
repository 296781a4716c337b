-- The web interface's tag page sorted by last push (`?sort=pushed`, `-pushed`): a repository's tags in push order
-- without sorting every tag of a large repository for each page.
CREATE INDEX tags_by_updated ON tags (repository, updated_at, tag);
