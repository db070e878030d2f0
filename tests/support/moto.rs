//! Test support: moto's S3 server (`pip install "moto[server]"`, which
//! `.ci/run` installs), the one S3 server here that enforces Object Lock
//! and keeps object versions. `tests/moto/serve.py` starts it on a loopback
//! port with authentication on (SigV4 signatures and IAM policies checked),
//! makes the buckets `locked` (Object Lock and versioning) and `plain`, and
//! two keys: `full` and `nodelete` (every S3 action but deletes).
//!
//! Owns the subprocess: started by [`MotoServer::start`], stopped on drop
//! (closing its stdin ends it; it is killed as well).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};

use serde_json::{json, Value};

pub const LOCKED_BUCKET: &str = "locked";
pub const PLAIN_BUCKET: &str = "plain";
pub const REGION: &str = "us-east-1";

/// Which key a settings object carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    Full,
    NoDelete,
}

pub struct MotoServer {
    child: Child,
    stdin: Option<ChildStdin>,
    pub port: u16,
    full: (String, String),
    nodelete: (String, String),
}

impl MotoServer {
    /// Starts the server and waits for its ready line.
    pub fn start() -> MotoServer {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/moto/serve.py");
        let mut child = Command::new("python3")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto (pip install \"moto[server]\"; .ci/run does)");
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("moto's ready line");
        let ready: Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("moto did not start: {line:?}"));
        let pair = |name: &str| {
            (
                ready[name][0].as_str().unwrap().to_owned(),
                ready[name][1].as_str().unwrap().to_owned(),
            )
        };
        MotoServer {
            port: ready["port"].as_u64().unwrap() as u16,
            full: pair("full"),
            nodelete: pair("nodelete"),
            stdin,
            child,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Remote settings JSON for `bucket`/`prefix` with the given key and
    /// Object Lock (`null` or `{"mode", "days"}`).
    pub fn settings(&self, bucket: &str, prefix: &str, keys: Keys, object_lock: Value) -> Value {
        let (id, secret) = match keys {
            Keys::Full => &self.full,
            Keys::NoDelete => &self.nodelete,
        };
        json!({
            "kind": "s3", "endpoint": self.endpoint(), "region": REGION, "bucket": bucket,
            "prefix": prefix, "path_style": true, "access_key_id": id,
            "secret_access_key": secret, "object_lock": object_lock
        })
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
