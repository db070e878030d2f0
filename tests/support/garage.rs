//! Test support: a real Garage cluster (the `garage` binary, version 2) of
//! one or three nodes on loopback, each node its own process with its own
//! temp dirs, ports and TOML file (`db_engine = "sqlite"`,
//! `replication_factor` = the node count).
//!
//! Owns starting the nodes, connecting them, assigning and applying the
//! layout, importing the test key ([`s3_server::ACCESS_KEY`] /
//! [`s3_server::SECRET_KEY`]) and creating the bucket
//! ([`s3_server::BUCKET`]), stopping and restarting one node on demand, and
//! killing every node on drop. Readiness is polled through the garage CLI
//! and an S3 listing, never a fixed sleep. It must not touch the piarchive
//! server: tests hand [`GarageCluster::settings`] to it.
//!
//! A missing `garage` binary fails the test with a sentence that says how
//! to install it (`tests/garage/install`); it never skips.
#![allow(dead_code)] // each test module uses a different part of the harness

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use piarchive::remote::{RemoteSettings, TransferOptions};

use super::s3_server::{ACCESS_KEY, BUCKET, REGION, SECRET_KEY};

/// The Garage version `tests/garage/install` installs.
pub const GARAGE_VERSION: &str = "2.5.0";
/// The name under which the test key is imported.
pub const KEY_NAME: &str = "piarchive-test-key";
/// How long one start-up step (a node up, the layout live, the bucket
/// answering) may take before the test fails.
const STEP_LIMIT: Duration = Duration::from_secs(90);
/// How often a start attempt is repeated when a picked port was taken by
/// someone else between picking and binding.
const START_ATTEMPTS: usize = 3;

/// Why the cluster could not be started or driven.
#[derive(Debug, thiserror::Error)]
pub enum GarageError {
    #[error(
        "The Garage tests need the `garage` binary (version {GARAGE_VERSION}), which was not \
         found on PATH nor in ~/.cargo/bin: run `tests/garage/install` once on this machine \
         (it runs `cargo install --locked garage --version {GARAGE_VERSION}`, about 10 minutes)."
    )]
    NotInstalled,
    #[error(
        "The Garage tests need garage version 2, but {binary} says {version:?}: run \
         `tests/garage/install` to install version {GARAGE_VERSION}."
    )]
    WrongVersion { binary: PathBuf, version: String },
    #[error("Garage could not be run ({what}): {source}.")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("`garage {command}` failed on node {node}: {output}")]
    Command {
        node: usize,
        command: String,
        output: String,
    },
    #[error("Garage node {node} exited during start-up ({status}); its log ends with:\n{log}")]
    NodeExited {
        node: usize,
        status: String,
        log: String,
    },
    #[error("Garage did not get ready within {limit:?} ({what}); last answer: {last}")]
    NotReady {
        what: String,
        limit: Duration,
        last: String,
    },
}

impl GarageError {
    /// A port picked as free was bound by someone else before the node started.
    fn is_port_taken(&self) -> bool {
        matches!(self, GarageError::NodeExited { log, .. } if log.contains("in use"))
    }
}

/// Finds the `garage` binary (PATH, then `$CARGO_HOME/bin`, then
/// `~/.cargo/bin`) and checks that it is version 2.
pub fn garage_binary() -> Result<PathBuf, GarageError> {
    garage_binary_among(garage_candidates())
}

/// Where `garage` may be installed, in lookup order.
fn garage_candidates() -> Vec<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("garage"))
                .collect()
        })
        .unwrap_or_default();
    if let Some(cargo_home) = std::env::var_os("CARGO_HOME") {
        candidates.push(PathBuf::from(cargo_home).join("bin").join("garage"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(
            PathBuf::from(home)
                .join(".cargo")
                .join("bin")
                .join("garage"),
        );
    }
    candidates
}

/// The first of `candidates` that exists, if it is garage version 2.
pub fn garage_binary_among(candidates: Vec<PathBuf>) -> Result<PathBuf, GarageError> {
    let binary = candidates
        .into_iter()
        .find(|candidate| candidate.is_file())
        .ok_or(GarageError::NotInstalled)?;
    let output = Command::new(&binary)
        .arg("--version")
        .output()
        .map_err(|source| GarageError::Io {
            what: format!("{} --version", binary.display()),
            source,
        })?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    // A release build says "garage v2.5.0 …", one from `cargo install`
    // "garage cargo:2.5.0 […]".
    let major_2 = ["garage v2.", "garage cargo:2."]
        .iter()
        .any(|start| version.starts_with(start));
    if !major_2 {
        return Err(GarageError::WrongVersion { binary, version });
    }
    Ok(binary)
}

/// One Garage node: its config file, addresses and (while running) process.
struct GarageNode {
    config: PathBuf,
    log: PathBuf,
    s3_address: SocketAddr,
    /// `HEXID@127.0.0.1:PORT`, known once the node has started.
    node_id: String,
    child: Option<Child>,
}

/// A running Garage cluster; every node is killed when it is dropped.
pub struct GarageCluster {
    binary: PathBuf,
    nodes: Vec<GarageNode>,
    /// `http://127.0.0.1:PORT` of node 0's S3 API, or `http://DOMAIN:PORT`
    /// when started virtual-hosted.
    pub endpoint: String,
    /// Node 0's S3 API address.
    pub address: SocketAddr,
    dir: tempfile::TempDir,
}

impl GarageCluster {
    /// A cluster of `node_count` nodes with `replication_factor = node_count`,
    /// the test key allowed on bucket [`BUCKET`]. Panics with the reason
    /// (e.g. how to install garage) when it cannot start.
    pub fn start(node_count: usize) -> Self {
        Self::start_with_domain(node_count, None)
    }

    /// Like [`GarageCluster::start`], with `root_domain = ".DOMAIN"` so the
    /// S3 API also answers virtual-hosted requests (`BUCKET.DOMAIN:PORT`);
    /// [`GarageCluster::endpoint`] is then `http://DOMAIN:PORT`. The domain
    /// does not resolve: point the client at [`GarageCluster::address`].
    pub fn start_virtual_hosted(domain: &str) -> Self {
        Self::start_with_domain(1, Some(domain))
    }

    fn start_with_domain(node_count: usize, domain: Option<&str>) -> Self {
        let binary = garage_binary().unwrap_or_else(|error| panic!("{error}"));
        let mut attempt = 1;
        loop {
            match Self::try_start(&binary, node_count, domain) {
                Ok(cluster) => return cluster,
                Err(error) if error.is_port_taken() && attempt < START_ATTEMPTS => attempt += 1,
                Err(error) => panic!("{error}"),
            }
        }
    }

    fn try_start(
        binary: &Path,
        node_count: usize,
        domain: Option<&str>,
    ) -> Result<Self, GarageError> {
        let dir = tempfile::tempdir().map_err(|source| GarageError::Io {
            what: "a temp dir".to_owned(),
            source,
        })?;
        let rpc_secret = hex::encode(rand::random::<[u8; 32]>());
        // Every port is held until all are picked, so they differ; they are
        // released just before the nodes bind them.
        let mut listeners: Vec<(TcpListener, TcpListener)> = Vec::new();
        for _ in 0..node_count {
            listeners.push((free_port()?, free_port()?));
        }
        let mut nodes = Vec::new();
        for (index, (rpc, s3)) in listeners.iter().enumerate() {
            let rpc_address = local_address(rpc)?;
            let s3_address = local_address(s3)?;
            let node_dir = dir.path().join(format!("node{index}"));
            let config = node_dir.join("garage.toml");
            let text = node_config(
                &node_dir,
                node_count,
                rpc_address,
                s3_address,
                &rpc_secret,
                domain,
            );
            std::fs::create_dir_all(&node_dir)
                .and_then(|()| std::fs::write(&config, text))
                .map_err(|source| GarageError::Io {
                    what: format!("writing {}", config.display()),
                    source,
                })?;
            nodes.push(GarageNode {
                config,
                log: node_dir.join("garage.log"),
                s3_address,
                node_id: String::new(),
                child: None,
            });
        }
        drop(listeners);
        let address = nodes[0].s3_address;
        let endpoint = match domain {
            Some(domain) => format!("http://{domain}:{}", address.port()),
            None => format!("http://{address}"),
        };
        let mut cluster = GarageCluster {
            binary: binary.to_owned(),
            nodes,
            endpoint,
            address,
            dir,
        };
        for index in 0..node_count {
            cluster.spawn_node(index)?;
        }
        for index in 0..node_count {
            cluster.wait_node_answers(index)?;
            let id = cluster.cli(index, &["node", "id", "-q"])?;
            cluster.nodes[index].node_id = id.lines().next().unwrap_or("").trim().to_owned();
        }
        cluster.form_cluster()?;
        Ok(cluster)
    }

    /// Connects the nodes, gives each a zone of its own, applies the layout,
    /// imports the key, creates the bucket and allows the key on it.
    fn form_cluster(&mut self) -> Result<(), GarageError> {
        for index in 1..self.nodes.len() {
            let peer = self.nodes[index].node_id.clone();
            self.cli(0, &["node", "connect", &peer])?;
        }
        for index in 0..self.nodes.len() {
            let hex_id = self.hex_id(index);
            let zone = format!("zone{index}");
            self.cli_until_ok(
                0,
                &["layout", "assign", "-z", &zone, "-c", "1G", &hex_id],
                "the layout assignment",
            )?;
        }
        self.cli(0, &["layout", "apply", "--version", "1"])?;
        self.cli_until_ok(
            0,
            &[
                "key", "import", "--yes", "-n", KEY_NAME, ACCESS_KEY, SECRET_KEY,
            ],
            "the key import",
        )?;
        self.cli_until_ok(0, &["bucket", "create", BUCKET], "the bucket creation")?;
        self.cli_until_ok(
            0,
            &[
                "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", KEY_NAME,
            ],
            "the bucket permission",
        )?;
        self.wait_healthy()?;
        self.wait_s3_answers()
    }

    /// The node's full hexadecimal id (the part before `@`).
    fn hex_id(&self, index: usize) -> String {
        let id = &self.nodes[index].node_id;
        id.split('@').next().unwrap_or(id).to_owned()
    }

    fn spawn_node(&mut self, index: usize) -> Result<(), GarageError> {
        let node = &mut self.nodes[index];
        let log = File::options()
            .create(true)
            .append(true)
            .open(&node.log)
            .map_err(|source| GarageError::Io {
                what: format!("opening {}", node.log.display()),
                source,
            })?;
        let log_err = log.try_clone().map_err(|source| GarageError::Io {
            what: "the log file handle".to_owned(),
            source,
        })?;
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&node.config)
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|source| GarageError::Io {
                what: format!("starting {} server", self.binary.display()),
                source,
            })?;
        node.child = Some(child);
        Ok(())
    }

    /// Polls `garage status` against the node until its RPC answers; fails
    /// early when the process exits.
    fn wait_node_answers(&mut self, index: usize) -> Result<(), GarageError> {
        let deadline = Instant::now() + STEP_LIMIT;
        loop {
            self.check_alive(index)?;
            let last = match self.cli(index, &["status"]) {
                Ok(_) => return Ok(()),
                Err(error) => error.to_string(),
            };
            if Instant::now() > deadline {
                return Err(GarageError::NotReady {
                    what: format!("node {index} answering `garage status`"),
                    limit: STEP_LIMIT,
                    last,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn check_alive(&mut self, index: usize) -> Result<(), GarageError> {
        let node = &mut self.nodes[index];
        if let Some(child) = node.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                node.child = None;
                return Err(GarageError::NodeExited {
                    node: index,
                    status: status.to_string(),
                    log: log_tail(&node.log),
                });
            }
        }
        Ok(())
    }

    /// Polls node 0 until it sees every storage node up and all partitions
    /// fully replicated.
    fn wait_healthy(&mut self) -> Result<(), GarageError> {
        let expected = self.nodes.len();
        let deadline = Instant::now() + STEP_LIMIT;
        loop {
            for index in 0..expected {
                if self.nodes[index].child.is_some() {
                    self.check_alive(index)?;
                }
            }
            let last = match self.cli(0, &["json-api", "GetClusterHealth"]) {
                Ok(text) => match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(health)
                        if health["status"] == "healthy"
                            && health["storageNodesUp"] == expected
                            && health["partitionsAllOk"] == health["partitions"] =>
                    {
                        return Ok(())
                    }
                    _ => text,
                },
                Err(error) => error.to_string(),
            };
            if Instant::now() > deadline {
                return Err(GarageError::NotReady {
                    what: format!("all {expected} nodes healthy"),
                    limit: STEP_LIMIT,
                    last,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls an S3 listing with the test key until the bucket answers.
    fn wait_s3_answers(&self) -> Result<(), GarageError> {
        let options = TransferOptions {
            timeout: Duration::from_secs(5),
            max_attempts: 1,
            base_backoff: Duration::from_millis(5),
        };
        let settings = self.settings_via(&format!("http://{}", self.address), "readiness-probe");
        let deadline = Instant::now() + STEP_LIMIT;
        loop {
            let last = match piarchive::remote::open(&settings, &options)
                .and_then(|remote| remote.list(""))
            {
                Ok(_) => return Ok(()),
                Err(error) => error.to_string(),
            };
            if Instant::now() > deadline {
                return Err(GarageError::NotReady {
                    what: "the S3 API listing the bucket".to_owned(),
                    limit: STEP_LIMIT,
                    last,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `garage -c NODE.toml ARGS` and returns its stdout.
    fn cli(&self, index: usize, args: &[&str]) -> Result<String, GarageError> {
        let output: Output = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.nodes[index].config)
            .args(args)
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .output()
            .map_err(|source| GarageError::Io {
                what: format!("garage {}", args.join(" ")),
                source,
            })?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(GarageError::Command {
                node: index,
                command: args.join(" "),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                )
                .trim()
                .to_owned(),
            })
        }
    }

    /// Repeats a CLI command while the cluster is still settling (a fresh
    /// layout reaches the nodes a moment after `layout apply`).
    fn cli_until_ok(&self, index: usize, args: &[&str], what: &str) -> Result<String, GarageError> {
        let deadline = Instant::now() + STEP_LIMIT;
        loop {
            match self.cli(index, args) {
                Ok(text) => return Ok(text),
                Err(error) if Instant::now() > deadline => {
                    return Err(GarageError::NotReady {
                        what: what.to_owned(),
                        limit: STEP_LIMIT,
                        last: error.to_string(),
                    })
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// What the README tells a family to run for each further appliance:
    /// `garage key create NAME`, `garage bucket create BUCKET`,
    /// `garage bucket allow --read --write --owner BUCKET --key NAME`.
    /// Returns that appliance's settings (prefix `piarchive`).
    pub fn add_bucket_and_key(&self, bucket: &str, key_name: &str) -> RemoteSettings {
        let result = self
            .cli(0, &["key", "create", key_name])
            .and_then(|created| {
                self.cli(0, &["bucket", "create", bucket])?;
                self.cli(
                    0,
                    &[
                        "bucket", "allow", "--read", "--write", "--owner", bucket, "--key",
                        key_name,
                    ],
                )?;
                Ok(created)
            });
        let created = result.unwrap_or_else(|error| panic!("{error}"));
        let field = |label: &str| {
            created
                .lines()
                .find(|line| line.trim_start().starts_with(label))
                .and_then(|line| line.split_whitespace().last())
                .unwrap_or_else(|| panic!("no {label:?} in `garage key create`: {created}"))
                .to_owned()
        };
        RemoteSettings::S3 {
            endpoint: self.endpoint.clone(),
            region: REGION.to_owned(),
            bucket: bucket.to_owned(),
            prefix: "piarchive".to_owned(),
            path_style: true,
            access_key_id: field("Key ID:"),
            secret_access_key: field("Secret key:"),
            object_lock: None,
        }
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// `http://127.0.0.1:PORT` of one node's S3 API (any node serves the
    /// whole bucket).
    pub fn node_endpoint(&self, index: usize) -> String {
        format!("http://{}", self.nodes[index].s3_address)
    }

    /// Kills one node (SIGKILL: a box losing power).
    pub fn stop_node(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a stopped node again on its old ports and data, and waits
    /// until the cluster is healthy again.
    pub fn restart_node(&mut self, index: usize) {
        self.stop_node(index);
        let result = self
            .spawn_node(index)
            .and_then(|()| self.wait_node_answers(index))
            .and_then(|()| self.wait_healthy());
        if let Err(error) = result {
            panic!("{error}");
        }
    }

    /// Whether the node's process is running.
    pub fn node_running(&mut self, index: usize) -> bool {
        self.check_alive(index).is_ok() && self.nodes[index].child.is_some()
    }

    /// Node 0's answer to `GetClusterHealth` (JSON), for messages.
    pub fn health(&self) -> String {
        match self.cli(0, &["json-api", "GetClusterHealth"]) {
            Ok(text) => text,
            Err(error) => error.to_string(),
        }
    }

    /// Path-style settings for node 0 with the test key.
    pub fn settings(&self, prefix: &str) -> RemoteSettings {
        self.settings_via(&self.endpoint, prefix)
    }

    /// Like [`GarageCluster::settings`] with another endpoint (another node,
    /// or a proxy in front of node 0).
    pub fn settings_via(&self, endpoint: &str, prefix: &str) -> RemoteSettings {
        RemoteSettings::S3 {
            endpoint: endpoint.to_owned(),
            region: REGION.to_owned(),
            bucket: BUCKET.to_owned(),
            prefix: prefix.to_owned(),
            path_style: true,
            access_key_id: ACCESS_KEY.to_owned(),
            secret_access_key: SECRET_KEY.to_owned(),
            object_lock: None,
        }
    }

    /// The nodes' logs, for a failing test's message.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(index, node)| format!("--- node {index}:\n{}", log_tail(&node.log)))
            .collect()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for GarageCluster {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.stop_node(index);
        }
    }
}

/// One node's TOML file: everything on loopback, sqlite metadata, and the
/// region the S3 tests sign with.
fn node_config(
    node_dir: &Path,
    replication_factor: usize,
    rpc: SocketAddr,
    s3: SocketAddr,
    rpc_secret: &str,
    domain: Option<&str>,
) -> String {
    let quoted = |text: &str| toml::Value::String(text.to_owned()).to_string();
    let metadata = node_dir.join("meta");
    let data = node_dir.join("data");
    let root_domain = domain
        .map(|domain| format!("root_domain = {}\n", quoted(&format!(".{domain}"))))
        .unwrap_or_default();
    format!(
        "metadata_dir = {metadata}\n\
         data_dir = {data}\n\
         db_engine = \"sqlite\"\n\
         replication_factor = {replication_factor}\n\
         rpc_bind_addr = \"{rpc}\"\n\
         rpc_public_addr = \"{rpc}\"\n\
         rpc_secret = \"{rpc_secret}\"\n\
         \n\
         [s3_api]\n\
         s3_region = {region}\n\
         api_bind_addr = \"{s3}\"\n\
         {root_domain}",
        metadata = quoted(&metadata.to_string_lossy()),
        data = quoted(&data.to_string_lossy()),
        region = quoted(REGION),
    )
}

fn free_port() -> Result<TcpListener, GarageError> {
    TcpListener::bind("127.0.0.1:0").map_err(|source| GarageError::Io {
        what: "binding 127.0.0.1:0 to pick a port".to_owned(),
        source,
    })
}

fn local_address(listener: &TcpListener) -> Result<SocketAddr, GarageError> {
    listener.local_addr().map_err(|source| GarageError::Io {
        what: "reading a picked port".to_owned(),
        source,
    })
}

/// The last 40 lines of a node's log.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
