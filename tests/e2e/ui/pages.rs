//! The interface over plain HTTP: sign-in, sessions, CSRF, headers.
