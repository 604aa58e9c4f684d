//! The one error type of fncache, with a kind to match on.

use std::fmt;

/// What went wrong, coarsely: match on this rather than on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The builder was given an invalid setting (empty name, zero size or TTL, bad URL...).
    Config,
    /// The mode forbids computing (`exec: false`) and the cache had no value.
    Miss,
    /// The backend could not be reached or failed to answer (I/O, timeout, server error).
    Backend,
    /// A key used by this cache holds a value of another Redis type; the message names the key.
    WrongType,
    /// The server refused the credentials, or the ACL user lacks a permission fncache needs
    /// (the message names the command or key that was denied).
    Denied,
    /// Arguments or a value could not be serialized.
    Encode,
    /// A stored value could not be decoded (other codec, corrupt bytes, changed type).
    Decode,
    /// A batch's `compute_missing` returned a number of values other than the number of
    /// arguments it was given (see [`Cache::get_or_compute_many`](crate::Cache::get_or_compute_many));
    /// nothing of that computation is stored.
    BatchLength,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Config => "invalid configuration",
            ErrorKind::Miss => "cache miss",
            ErrorKind::Backend => "backend error",
            ErrorKind::WrongType => "wrong key type",
            ErrorKind::Denied => "access denied",
            ErrorKind::Encode => "encoding error",
            ErrorKind::Decode => "decoding error",
            ErrorKind::BatchLength => "batch length mismatch",
        })
    }
}

/// The error of every fallible fncache operation.
///
/// Messages never contain credentials: URLs are redacted before they are put in a message.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error {
            kind,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message)
    }

    pub(crate) fn miss(function: &str) -> Self {
        Error::new(
            ErrorKind::Miss,
            format!("no cached value for `{function}` and the mode forbids computing it"),
        )
    }

    /// Maps a redis-rs error (wrong-type errors are named by the Redis plan instead).
    ///
    /// Server messages are quoted only for permission errors, whose text names a command or a
    /// key, never a credential.
    pub(crate) fn from_redis(err: redis::RedisError) -> Self {
        if server_code(&err) == Some("WRONGTYPE") {
            return Error::with_source(
                ErrorKind::WrongType,
                "a key of this cache holds a value of the wrong type",
                err,
            );
        }
        if server_code(&err) == Some("NOPERM") {
            let detail = err.detail().unwrap_or("no details").to_owned();
            return Error::with_source(
                ErrorKind::Denied,
                format!(
                    "the Redis user lacks a permission fncache needs (NOPERM {detail}); see the \
                     README for the ACL rules a cache needs"
                ),
                err,
            );
        }
        if err.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(err.code(), Some("WRONGPASS" | "NOAUTH"))
        {
            return Error::with_source(
                ErrorKind::Denied,
                "Redis refused the credentials (wrong username or password, a disabled user, \
                 or a password required but not given)",
                err,
            );
        }
        Error::with_source(ErrorKind::Backend, "redis request failed", err)
    }

    /// The same failure again, its sources folded into the message (one failure of a batch's
    /// round trip is each op's failure).
    pub(crate) fn copy(&self) -> Error {
        let mut message = self.message.clone();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Error::new(self.kind, message)
    }

    /// This error and its sources on one line (for messages that quote an earlier failure).
    pub(crate) fn describe(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }

    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// True when the cache had no value and the mode forbade computing one.
    pub fn is_miss(&self) -> bool {
        self.kind == ErrorKind::Miss
    }

    /// True for backend failures (unreachable server, timeout, server error, wrong key type,
    /// access denied).
    pub fn is_backend(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Backend | ErrorKind::WrongType | ErrorKind::Denied
        )
    }
}

/// The error code of a server's reply, looking inside a failed script's wrapper: Redis 7.0
/// and Valkey answer a script whose `redis.call` failed with that call's error (`WRONGTYPE
/// ...`, `NOPERM ...`), Redis 6.2 with `ERR Error running script (call to f_...):
/// @user_script:1: WRONGTYPE ...` (a string `error()` adds one more `user_script:1: `). The
/// code there is the first part between `: ` that starts with an upper-case word.
pub(crate) fn server_code(err: &redis::RedisError) -> Option<&str> {
    let code = err.code()?;
    if code != "ERR" {
        return Some(code);
    }
    let Some(detail) = err
        .detail()
        .filter(|d| d.starts_with("Error running script"))
    else {
        return Some(code);
    };
    let inner = detail.split(": ").skip(1).find_map(|part| {
        let word = part.split(' ').next()?;
        (word.len() >= 2 && word.bytes().all(|b| b.is_ascii_uppercase())).then_some(word)
    });
    Some(inner.unwrap_or(code))
}

/// A server's error reply `line` as redis-rs reads it off the wire (for tests of what the
/// client makes of it).
#[cfg(test)]
pub(crate) fn server_error(line: &str) -> redis::RedisError {
    redis::parse_redis_value(format!("-{line}\r\n").as_bytes())
        .unwrap()
        .extract_error()
        .unwrap_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_failure_is_known_by_the_code_of_the_call_that_failed_on_every_server() {
        let cases = [
            // Redis 7.0 and Valkey pass the call's error through.
            (
                "WRONGTYPE Operation against a key holding the wrong kind of value",
                "WRONGTYPE",
            ),
            ("NOPERM this user may not publish on c", "NOPERM"),
            // Redis 6.2 wraps it: a failed redis.call, and a string error().
            (
                "ERR Error running script (call to f_1c): @user_script:1: WRONGTYPE Operation \
                 against a key holding the wrong kind of value",
                "WRONGTYPE",
            ),
            (
                "ERR Error running script (call to f_b5): @user_script:9: user_script:9: NOPERM \
                 this user may not publish on c: nothing was changed",
                "NOPERM",
            ),
            // Anything else keeps its own code.
            (
                "ERR Error running script (call to f_9b): @user_script:3: user_script:3: \
                 attempt to index a number value",
                "ERR",
            ),
            ("ERR unknown command 'DELIFEQ'", "ERR"),
            ("NOSCRIPT No matching script", "NOSCRIPT"),
        ];
        for (line, code) in cases {
            assert_eq!(server_code(&server_error(line)), Some(code), "{line}");
        }
        assert_eq!(
            Error::from_redis(server_error(cases[2].0)).kind(),
            ErrorKind::WrongType
        );
        assert_eq!(
            Error::from_redis(server_error(cases[3].0)).kind(),
            ErrorKind::Denied
        );
    }

    #[test]
    fn kinds_are_reported() {
        let e = Error::miss("f");
        assert!(e.is_miss());
        assert_eq!(e.kind(), ErrorKind::Miss);
        assert!(e.to_string().starts_with("cache miss: "));
        assert!(!Error::config("x").is_backend());
    }
}
