//! Why a reporter subcommand could not find out (exit 3, Nagios UNKNOWN).

use ubackup_common::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum ReporterError {
    #[error("config: {0}")]
    Config(#[from] ConfigError),
    #[error("Redis {target} unreachable: {source}")]
    Redis {
        target: String,
        source: redis::RedisError,
    },
    #[error("{0}")]
    Other(String),
}
