//! Start-up configuration, resolved once and passed explicitly.
//!
//! Lookup order, later wins: built-in defaults, the config file
//! (`--config FILE`, else `PIARCHIVE_CONFIG`, else `<data>/piarchive.toml`
//! if it exists), the environment (`PIARCHIVE_DATA`, `PIARCHIVE_LISTEN`,
//! `PIARCHIVE_LISTEN_HTTPS`), the command line (`--data`, `--listen`,
//! `--listen-https`). Settings an admin changes at run
//! time live in `settings` instead. See `templates/piarchive.toml` for every
//! key with its meaning.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: String,
    /// The HTTPS listener's address; empty = no HTTPS.
    pub listen_https: String,
    /// LMDB map size in bytes.
    pub map_size: usize,
    pub session_ttl: Duration,
    /// Threads answering HTTP requests (a long upload holds one).
    pub http_threads: usize,
    /// Board profile name (`pi4`, `qemu-virt`, …); `None` = detect.
    pub board: Option<String>,
    /// How often the notification digest goes out when it is on: a week
    /// (`digest_period_seconds` in the file shortens it, for tests).
    pub digest_period: Duration,
    /// The shortest interval a deployment may have, in seconds: 5 minutes
    /// (`min_deployment_interval_seconds` in the file lowers it, for tests).
    pub min_deployment_interval_seconds: u64,
    /// The box's time zone (`TZ`, else `/etc/localtime`, else UTC): the
    /// upload window's clock, named where a time is typed.
    pub zone: crate::zone::BoxZone,
}

/// The file's shape: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    data: Option<PathBuf>,
    listen: Option<String>,
    listen_https: Option<String>,
    map_size_mib: Option<usize>,
    session_days: Option<u64>,
    http_threads: Option<usize>,
    board: Option<String>,
    digest_period_seconds: Option<u64>,
    min_deployment_interval_seconds: Option<u64>,
}

/// What the command line said; `None` = not given.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub listen_https: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("Cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("The config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
}

impl Config {
    pub fn defaults() -> Config {
        Config {
            data_dir: PathBuf::from("piarchive-data"),
            listen: "127.0.0.1:8080".to_string(),
            listen_https: "127.0.0.1:8443".to_string(),
            map_size: if cfg!(target_pointer_width = "64") {
                1 << 30
            } else {
                256 << 20
            },
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            http_threads: 16,
            board: None,
            digest_period: Duration::from_secs(7 * 24 * 3600),
            min_deployment_interval_seconds: 300,
            zone: crate::zone::BoxZone::utc(),
        }
    }

    /// Resolves the configuration from defaults, file, environment and
    /// command line, in that order. `env` is handed in (tests pass their own).
    pub fn resolve(
        overrides: &Overrides,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut config = Config::defaults();
        let env_data = env("PIARCHIVE_DATA").map(PathBuf::from);
        let data_guess = overrides
            .data_dir
            .clone()
            .or(env_data.clone())
            .unwrap_or(config.data_dir.clone());
        let explicit_file = overrides
            .config_file
            .clone()
            .or(env("PIARCHIVE_CONFIG").map(PathBuf::from));
        let file = match explicit_file {
            Some(path) => Some(read_file(&path)?),
            None => {
                let implicit = data_guess.join("piarchive.toml");
                if implicit.exists() {
                    Some(read_file(&implicit)?)
                } else {
                    None
                }
            }
        };
        if let Some(file) = file {
            if let Some(data) = file.data {
                config.data_dir = data;
            }
            if let Some(listen) = file.listen {
                config.listen = listen;
            }
            if let Some(listen) = file.listen_https {
                config.listen_https = listen;
            }
            if let Some(mib) = file.map_size_mib {
                config.map_size = mib << 20;
            }
            if let Some(days) = file.session_days {
                config.session_ttl = Duration::from_secs(days * 24 * 3600);
            }
            if let Some(threads) = file.http_threads {
                config.http_threads = threads.clamp(2, 256);
            }
            config.board = file.board;
            if let Some(seconds) = file.digest_period_seconds {
                config.digest_period = Duration::from_secs(seconds.max(1));
            }
            if let Some(seconds) = file.min_deployment_interval_seconds {
                config.min_deployment_interval_seconds = seconds.max(1);
            }
        }
        if let Some(data) = env_data {
            config.data_dir = data;
        }
        config.zone = match env("TZ") {
            Some(tz) => crate::zone::BoxZone::from_sources(Some(&tz), None),
            None => crate::zone::BoxZone::from_environment(),
        };
        if let Some(listen) = env("PIARCHIVE_LISTEN") {
            config.listen = listen;
        }
        if let Some(listen) = env("PIARCHIVE_LISTEN_HTTPS") {
            config.listen_https = listen;
        }
        if let Some(data) = &overrides.data_dir {
            config.data_dir = data.clone();
        }
        if let Some(listen) = &overrides.listen {
            config.listen = listen.clone();
        }
        if let Some(listen) = &overrides.listen_https {
            config.listen_https = listen.clone();
        }
        Ok(config)
    }
}

fn read_file(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|err| ConfigError::Parse {
        path: path.to_path_buf(),
        message: err.message().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_sources_win() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:9000\"\ndata = \"/srv/file\"\nmap_size_mib = 64\n",
        )
        .unwrap();
        let overrides = Overrides {
            config_file: Some(file.clone()),
            ..Default::default()
        };
        let config = Config::resolve(&overrides, |_| None).unwrap();
        assert_eq!(config.listen, "0.0.0.0:9000");
        assert_eq!(config.data_dir, PathBuf::from("/srv/file"));
        assert_eq!(config.map_size, 64 << 20);

        let env = |key: &str| (key == "PIARCHIVE_LISTEN").then(|| "127.0.0.1:1".to_string());
        assert_eq!(
            Config::resolve(&overrides, env).unwrap().listen,
            "127.0.0.1:1"
        );

        let overrides = Overrides {
            listen: Some("127.0.0.1:2".into()),
            ..overrides
        };
        assert_eq!(
            Config::resolve(&overrides, env).unwrap().listen,
            "127.0.0.1:2"
        );
    }

    #[test]
    fn the_template_parses_and_unknown_keys_are_refused() {
        let template: ConfigFile =
            toml::from_str(include_str!("../templates/piarchive.toml")).unwrap();
        assert!(
            template.listen.is_none(),
            "the template only documents defaults in comments"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let overrides = Overrides {
            config_file: Some(file),
            ..Default::default()
        };
        let err = Config::resolve(&overrides, |_| None).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }
}
