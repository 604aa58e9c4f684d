//! One script call, built directly as an `EVALSHA` command.
//!
//! redis-rs's `ScriptInvocation` keeps every key and argument in a vector of its own and copies
//! them all into a fresh command at each call; on the hit path those allocations were a
//! measurable share of the client's work. A [`ScriptCall`] writes them once, into the command
//! itself, and loads the script only when the server answers `NOSCRIPT` (after a restart, a
//! failover or `SCRIPT FLUSH`), exactly as redis-rs does.

use std::fmt;

use redis::{Cmd, ErrorKind, RedisResult, Script, ServerErrorKind, ToRedisArgs, Value};

/// An `EVALSHA` of one of our scripts.
pub(crate) struct ScriptCall {
    script: &'static Script,
    /// The script's file, for `Debug`.
    name: &'static str,
    cmd: Cmd,
}

impl fmt::Debug for ScriptCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys and arguments may hold user data: only the script is named.
        f.debug_struct("ScriptCall")
            .field("script", &self.name)
            .finish_non_exhaustive()
    }
}

impl ScriptCall {
    /// A call of `script` with `keys` keys: add exactly that many keys, then the arguments.
    pub(crate) fn new(script: &'static Script, name: &'static str, keys: usize) -> ScriptCall {
        // Room for the usual call (a few keys of ~60 bytes and small arguments) up front, so
        // that building it does not reallocate.
        let mut cmd = Cmd::with_capacity(16, 512);
        cmd.arg("EVALSHA").arg(script.get_hash()).arg(keys);
        ScriptCall { script, name, cmd }
    }

    /// Adds a key or an argument.
    pub(crate) fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut ScriptCall {
        self.cmd.arg(arg);
        self
    }

    /// The `EVALSHA` command itself, for a pipeline of several calls (whose `NOSCRIPT`
    /// replies are then sent again with [`ScriptCall::invoke`]).
    pub(crate) fn cmd(&self) -> &Cmd {
        &self.cmd
    }

    /// The script's file name.
    #[cfg(test)]
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// The command's words after `EVALSHA sha`: the key count, the keys, the arguments.
    #[cfg(test)]
    pub(crate) fn words(&self) -> Vec<String> {
        self.cmd
            .args_iter()
            .skip(2)
            .map(|arg| match arg {
                redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                _ => "<cursor>".to_owned(),
            })
            .collect()
    }

    /// Sends the call, loading the script first if the server does not have it.
    pub(crate) fn invoke(&self, con: &mut dyn redis::ConnectionLike) -> RedisResult<Value> {
        match self.cmd.query(con) {
            Err(e) if is_noscript(&e) => {
                self.script.load(con)?;
                self.cmd.query(con)
            }
            answered => answered,
        }
    }

    /// [`ScriptCall::invoke`] on an async connection.
    pub(crate) async fn invoke_async<C: redis::aio::ConnectionLike>(
        &self,
        con: &mut C,
    ) -> RedisResult<Value> {
        match self.cmd.query_async(con).await {
            Err(e) if is_noscript(&e) => {
                self.script.load_async(con).await?;
                self.cmd.query_async(con).await
            }
            answered => answered,
        }
    }
}

pub(crate) fn is_noscript(e: &redis::RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::NoScript)
}
