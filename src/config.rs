//! TOML configuration parsed into validated types.
//!
//! Every field has an embedded default so `portcullis serve` runs with no file
//! at all. Unknown keys are refused (`deny_unknown_fields`) and every bad value
//! is collected so the operator sees all problems at once, before we listen.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod cluster;
mod console;
mod default_rules;
mod duration;
mod jump;
mod limits;
pub mod lockdown;
mod ssh;
pub mod sso;
mod storage;
pub use cluster::{ClusterConfig, OnDbOutage};
pub use console::ConsoleConfig;
pub use duration::parse_duration;
pub use jump::JumpConfig;
pub use limits::Limits;
pub use lockdown::parse_cidr;
pub use ssh::SshSettings;
pub use sso::{SshMode, SsoConfig};
pub use storage::RecordingsSpace;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid:\n{problems}")]
    Invalid { path: PathBuf, problems: String },
}

/// The file as written by the operator; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    kek_file: Option<PathBuf>,
    accepted_kek_files: Option<Vec<PathBuf>>,
    host_keys: Option<Vec<PathBuf>>,
    host_ca_file: Option<PathBuf>,
    recordings_dir: Option<PathBuf>,
    recordings_retention_days: Option<u64>,
    #[serde(default)]
    recordings: storage::RawRecordings,
    audit_key_file: Option<PathBuf>,
    log_format: Option<String>,
    #[serde(default)]
    upstream: RawUpstream,
    #[serde(default)]
    limits: limits::RawLimits,
    #[serde(default)]
    access: RawAccess,
    audit_chain_key_file: Option<PathBuf>,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    lockdown: lockdown::RawLockdown,
    #[serde(default)]
    api: RawApi,
    #[serde(default)]
    jump: jump::RawJump,
    #[serde(default)]
    console: console::RawConsole,
    #[serde(default)]
    cluster: cluster::RawCluster,
    #[serde(default)]
    sso: sso::RawSso,
    #[serde(default)]
    ssh: ssh::RawSsh,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccess {
    approvers_group: Option<String>,
    max_request_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    connect_timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    stream: Option<String>,
    syslog_address: Option<String>,
}

/// Where each appended audit event is also sent, as one JSON line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditStream {
    None,
    Stdout,
    Syslog(SyslogAddress),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogAddress {
    /// A local datagram socket such as /dev/log.
    Unix(PathBuf),
    /// `host:port`, resolved when streaming starts.
    Udp(String),
}

/// The `[audit]` section.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    pub stream: AuditStream,
}

/// Validated configuration: every value here has been checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub kek_file: PathBuf,
    /// Keys that open secrets but never seal them: the next key before a
    /// rotation, the previous one until `kek rewrap` has run.
    pub accepted_kek_files: Vec<PathBuf>,
    /// Empty means "generate and keep an ed25519 key in the data directory".
    pub host_keys: Vec<PathBuf>,
    /// Ed25519 key of the host CA that certifies targets for `ssh -J`
    /// (created if missing). Nodes sharing one database share this file, so
    /// one `@cert-authority` line trusts every node.
    pub host_ca_file: PathBuf,
    /// Where session recordings (`.cast` + `.chain`) are written.
    pub recordings_dir: PathBuf,
    /// Recordings older than this are deleted (audited); `None` keeps them.
    pub recordings_retention_days: Option<u64>,
    pub recordings_space: RecordingsSpace,
    /// Ed25519 seed that signs recording trailers (public half beside it, `.pub`).
    pub audit_key_file: PathBuf,
    pub log_format: LogFormat,
    pub upstream_connect_timeout: Duration,
    pub limits: Limits,
    pub access: Access,
    /// HMAC key of the audit hash chain (32 bytes, 0600).
    pub audit_chain_key_file: PathBuf,
    pub audit: AuditSettings,
    pub lockdown: lockdown::LockdownConfig,
    pub api: ApiConfig,
    pub jump: JumpConfig,
    pub console: ConsoleConfig,
    /// `[cluster]`: node name and heartbeat expiry.
    pub cluster: ClusterConfig,
    /// `[sso]`: OpenID Connect sign-in (console and SSH).
    pub sso: SsoConfig,
    /// `[ssh]`: the load balancers sending PROXY protocol v2.
    pub ssh: SshSettings,
}

/// Just-in-time access settings.
#[derive(Debug, Clone)]
pub struct Access {
    /// Members of this group approve or deny access requests.
    pub approvers_group: String,
    /// Longest access a request may ask for.
    pub max_request_secs: u64,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:2222";
pub const DEFAULT_DATA_DIR: &str = "portcullis-data";

impl Config {
    /// Defaults only, as used when no file is given.
    pub fn embedded(data_dir: Option<&Path>) -> Config {
        // INVARIANT: an empty document has no unknown keys and no bad values.
        Self::from_raw(RawConfig::default(), data_dir).expect("embedded defaults are valid")
    }

    pub fn load(path: &Path, data_dir: Option<&Path>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, data_dir).map_err(|problems| ConfigError::Invalid {
            path: path.to_path_buf(),
            problems: problems
                .iter()
                .map(|p| format!("  - {p}"))
                .collect::<Vec<_>>()
                .join("\n"),
        })
    }

    /// Parses a document; on failure returns every problem found.
    pub fn parse(text: &str, data_dir: Option<&Path>) -> Result<Config, Vec<String>> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        Self::from_raw(raw, data_dir)
    }

    fn from_raw(raw: RawConfig, data_dir_override: Option<&Path>) -> Result<Config, Vec<String>> {
        let mut problems = Vec::new();
        let listen_text = raw.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
            problems.push(format!(
                "listen = {listen_text:?}: expected an address and port such as \"127.0.0.1:2222\""
            ));
            SocketAddr::from(([127, 0, 0, 1], 2222))
        });
        let data_dir = data_dir_override
            .map(Path::to_path_buf)
            .or(raw.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database_url = raw.database_url.unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("portcullis.db").display()
            )
        });
        if !(database_url.starts_with("sqlite:") || database_url.starts_with("postgres")) {
            problems.push("database_url: expected a sqlite:// or postgres:// URL".to_string());
        }
        let kek_file = raw.kek_file.unwrap_or_else(|| data_dir.join("kek"));
        let recordings_dir = raw
            .recordings_dir
            .unwrap_or_else(|| data_dir.join("recordings"));
        let audit_key_file = raw
            .audit_key_file
            .unwrap_or_else(|| data_dir.join("audit_ed25519"));
        let host_ca_file = raw.host_ca_file.unwrap_or_else(|| data_dir.join("host-ca"));
        let log_format = match raw.log_format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                problems.push(format!(
                    "log_format = {other:?}: expected \"text\" or \"json\""
                ));
                LogFormat::Text
            }
        };
        let upstream_connect_timeout = secs(
            &mut problems,
            "upstream.connect_timeout_secs",
            raw.upstream.connect_timeout_secs,
            10,
            1..=300,
        );
        let limits = raw.limits.check(&mut problems);
        let approvers_group = raw
            .access
            .approvers_group
            .unwrap_or_else(|| "approvers".into());
        if crate::names::Name::parse(&approvers_group).is_err() {
            problems.push(format!(
                "access.approvers_group = {approvers_group:?}: not a valid group name"
            ));
        }
        let access = Access {
            approvers_group,
            max_request_secs: secs(
                &mut problems,
                "access.max_request_secs",
                raw.access.max_request_secs,
                86_400,
                60..=2_592_000,
            )
            .as_secs(),
        };
        let audit_chain_key_file = raw
            .audit_chain_key_file
            .unwrap_or_else(|| data_dir.join("audit-chain.key"));
        let audit = audit_settings(raw.audit, &mut problems);
        let lockdown = raw.lockdown.check(&mut problems);
        let api = ApiConfig::from_raw(raw.api, &mut problems);
        let jump = raw.jump.check(&mut problems);
        let console = raw.console.check(&mut problems);
        let recordings_space = raw.recordings.check(&mut problems);
        let cluster = raw.cluster.check(&mut problems);
        let sso = raw.sso.check(&mut problems);
        let ssh = raw.ssh.check(&mut problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Config {
            listen,
            data_dir,
            database_url,
            kek_file,
            accepted_kek_files: raw.accepted_kek_files.unwrap_or_default(),
            host_keys: raw.host_keys.unwrap_or_default(),
            host_ca_file,
            recordings_dir,
            recordings_retention_days: raw.recordings_retention_days.filter(|d| *d > 0),
            recordings_space,
            audit_key_file,
            log_format,
            upstream_connect_timeout,
            limits,
            access,
            audit_chain_key_file,
            audit,
            lockdown,
            api,
            jump,
            console,
            cluster,
            sso,
            ssh,
        })
    }
}

fn audit_settings(raw: RawAudit, problems: &mut Vec<String>) -> AuditSettings {
    let address = raw.syslog_address.as_deref().unwrap_or("/dev/log");
    let syslog = if let Some(hostport) = address.strip_prefix("udp://") {
        match hostport.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
                Some(SyslogAddress::Udp(hostport.to_string()))
            }
            _ => None,
        }
    } else if address.starts_with('/') {
        Some(SyslogAddress::Unix(PathBuf::from(address)))
    } else {
        None
    };
    if syslog.is_none() {
        problems.push(format!(
            "audit.syslog_address = {address:?}: expected a socket path such as \"/dev/log\" or \"udp://host:514\""
        ));
    }
    let stream = match raw.stream.as_deref() {
        None | Some("none") => AuditStream::None,
        Some("stdout") => AuditStream::Stdout,
        Some("syslog") => {
            AuditStream::Syslog(syslog.unwrap_or(SyslogAddress::Unix("/dev/log".into())))
        }
        Some(other) => {
            problems.push(format!(
                "audit.stream = {other:?}: expected \"none\", \"stdout\" or \"syslog\""
            ));
            AuditStream::None
        }
    };
    AuditSettings { stream }
}

/// `[api]`: the HTTPS admin API (see `admin`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    enabled: Option<bool>,
    listen: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_ca_file: Option<PathBuf>,
    max_body_bytes: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// Both or neither; without them a self-signed pair is kept in the data dir.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// When set, clients must present a certificate issued by this CA (mutual TLS).
    pub client_ca_file: Option<PathBuf>,
    pub max_body_bytes: usize,
}

pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:8443";

impl ApiConfig {
    fn from_raw(raw: RawApi, problems: &mut Vec<String>) -> ApiConfig {
        let text = raw.listen.unwrap_or_else(|| DEFAULT_API_LISTEN.to_string());
        let listen = text.parse::<SocketAddr>().unwrap_or_else(|_| {
            problems.push(format!(
                "api.listen = {text:?}: expected an address and port such as \"127.0.0.1:8443\""
            ));
            SocketAddr::from(([127, 0, 0, 1], 8443))
        });
        if raw.cert_file.is_some() != raw.key_file.is_some() {
            problems.push("api.cert_file and api.key_file: give both or neither".to_string());
        }
        let max_body_bytes = raw.max_body_bytes.unwrap_or(64 << 10);
        if !(1024..=16 << 20).contains(&max_body_bytes) {
            problems.push(format!(
                "api.max_body_bytes = {max_body_bytes}: expected between 1024 and 16777216"
            ));
        }
        ApiConfig {
            enabled: raw.enabled.unwrap_or(true),
            listen,
            cert_file: raw.cert_file,
            key_file: raw.key_file,
            client_ca_file: raw.client_ca_file,
            max_body_bytes,
        }
    }
}

fn bounded(
    problems: &mut Vec<String>,
    name: &str,
    value: Option<u32>,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> u32 {
    let v = value.unwrap_or(default);
    if !range.contains(&v) {
        problems.push(format!(
            "{name} = {v}: expected between {} and {}",
            range.start(),
            range.end()
        ));
    }
    v
}

fn secs(
    problems: &mut Vec<String>,
    name: &str,
    value: Option<u64>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Duration {
    let v = value.unwrap_or(default);
    if !range.contains(&v) {
        problems.push(format!(
            "{name} = {v}: expected between {} and {} seconds",
            range.start(),
            range.end()
        ));
    }
    Duration::from_secs(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_gives_embedded_defaults() {
        let c = Config::parse("", None).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(c.database_url.starts_with("sqlite://"));
        assert_eq!(c.limits.login_grace, Duration::from_secs(30));
        assert_eq!(c.limits.max_unauthenticated_per_network, 64);
        assert_eq!(c.limits.second_factor_failures, 10);
        assert_eq!(c.limits.second_factor_window, Duration::from_secs(900));
        let e = Config::parse(
            "[limits]\nsecond_factor_failures = 0\nsecond_factor_window_secs = 1\nmax_unauthenticated_per_network = 0\n",
            None,
        )
        .unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
    }

    #[test]
    fn unknown_key_is_refused() {
        let e = Config::parse("lisen = \"0.0.0.0:22\"\n", None).unwrap_err();
        assert!(e[0].contains("lisen"), "{e:?}");
    }

    #[test]
    fn all_bad_values_are_reported_together() {
        let doc = "listen = \"nowhere\"\nlog_format = \"xml\"\n[limits]\nlogin_grace_secs = 0\n";
        let e = Config::parse(doc, None).unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e.iter().any(|p| p.contains("listen")));
        assert!(e.iter().any(|p| p.contains("log_format")));
        assert!(e.iter().any(|p| p.contains("login_grace_secs")));
    }

    #[test]
    fn audit_stream_settings() {
        let c = Config::parse(
            "[audit]\nstream = \"syslog\"\nsyslog_address = \"udp://127.0.0.1:5514\"\n",
            None,
        )
        .unwrap();
        assert_eq!(
            c.audit.stream,
            AuditStream::Syslog(SyslogAddress::Udp("127.0.0.1:5514".into()))
        );
        assert_eq!(
            Config::parse("", None).unwrap().audit.stream,
            AuditStream::None
        );
        let e = Config::parse(
            "[audit]\nstream = \"kafka\"\nsyslog_address = \"udp://nohost\"\n",
            None,
        )
        .unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
    }

    #[test]
    fn data_dir_override_wins() {
        let c = Config::parse("data_dir = \"/a\"", Some(Path::new("/b"))).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/b"));
        assert!(c.kek_file.starts_with("/b"));
    }
}
