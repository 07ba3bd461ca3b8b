//! Transport security: TLS from PEM files (rustls), client-certificate verification
//! (mTLS), and bearer tokens compared in constant time.
//!
//! Everything is read and checked once, at start-up, by [`Security::load`], so a bad file
//! stops the server with one line that names the file and its flag instead of failing on
//! the first connection. [`Auth`] is the interceptor that guards gist's services and
//! reflection; the health service is left out of it so that probes need no credentials.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use tonic::metadata::MetadataMap;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Status};

/// Transport security settings: TLS, client certificates, bearer tokens.
#[derive(Debug, Clone, Default, PartialEq, clap::Args, serde::Serialize)]
pub struct SecurityArgs {
    /// Serve TLS with this PEM certificate chain (server certificate first); needs --tls-key.
    #[arg(long, env = "GIST_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (PKCS#8, RSA or EC).
    #[arg(long, env = "GIST_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by a CA in this PEM file (mutual TLS) for gist's
    /// services and reflection; health stays open. Needs --tls-cert.
    #[arg(
        long,
        env = "GIST_TLS_CLIENT_CA",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<PathBuf>,
    /// Require `authorization: Bearer <token>` with one of the tokens in this file (one per
    /// line; blank lines and # comments skipped) for gist's services and reflection; health
    /// stays open.
    #[arg(long, env = "GIST_AUTH_TOKENS", value_name = "FILE")]
    pub auth_tokens: Option<PathBuf>,
}

/// Tokens shorter than this get a start-up warning: they can be guessed.
const MIN_TOKEN_CHARS: usize = 16;

/// A TLS handshake that takes longer than this is dropped, so idle sockets cannot pile up.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the client is told when it sends no usable `authorization` header.
pub const MISSING_TOKEN: &str = "missing bearer token: send `authorization: Bearer <token>`";
/// What the client is told when its token is not one of the configured ones.
pub const INVALID_TOKEN: &str = "invalid bearer token";
/// What the client is told when mTLS is on and it presented no certificate.
pub const MISSING_CLIENT_CERT: &str =
    "missing client certificate: this server accepts only clients with a certificate from its CA";

/// A security setting that cannot be used. The message is one line naming the flag and the
/// file; the cause is written into it (not chained as a source) because the server prints
/// it as its only start-up error.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// A file could not be read.
    #[error("cannot read {flag} {}: {cause}", path.display())]
    Read {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        cause: std::io::Error,
    },
    /// A file was read but its content is unusable.
    #[error("{flag} {}: {reason}", path.display())]
    Invalid {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Flags that only work together were given apart.
    #[error("{0}")]
    Usage(&'static str),
}

/// The loaded security settings of one server: the TLS configuration, if any, and the
/// interceptor that authenticates calls.
#[derive(Clone, Default)]
pub struct Security {
    tls: Option<ServerTlsConfig>,
    auth: Auth,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("tls", &self.tls.is_some())
            .field("auth", &self.auth)
            .finish()
    }
}

impl Security {
    /// Read and check the certificate, key, client CA and token files named in `args`.
    ///
    /// # Errors
    /// [`SecurityError`] naming the flag and file when a file cannot be read, holds no
    /// usable PEM item, when the key does not match the certificate, or when the token file
    /// holds no token; also when `--tls-cert`, `--tls-key` and `--tls-client-ca` are
    /// given in a combination that cannot work.
    pub fn load(args: &SecurityArgs) -> Result<Security, SecurityError> {
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(load_tls(cert, key, args.tls_client_ca.as_deref())?),
            (None, None) if args.tls_client_ca.is_some() => {
                return Err(SecurityError::Usage(
                    "--tls-client-ca needs --tls-cert and --tls-key: client certificates are checked over TLS",
                ))
            }
            (None, None) => None,
            (Some(_), None) => return Err(SecurityError::Usage("--tls-cert needs --tls-key")),
            (None, Some(_)) => return Err(SecurityError::Usage("--tls-key needs --tls-cert")),
        };
        let tokens = match &args.auth_tokens {
            Some(path) => Some(load_tokens(path)?),
            None => None,
        };
        Ok(Security {
            tls,
            auth: Auth {
                tokens,
                require_client_cert: args.tls_client_ca.is_some(),
            },
        })
    }

    /// The TLS configuration for the server, when TLS is on.
    pub fn tls(&self) -> Option<ServerTlsConfig> {
        self.tls.clone()
    }

    /// The interceptor for the services that need credentials.
    pub fn auth(&self) -> Auth {
        self.auth.clone()
    }

    /// Log what is on, and warn when a server reachable from other machines is left
    /// without encryption or without authentication.
    pub fn log(&self, address: SocketAddr) {
        let tls = self.tls.is_some();
        let authenticated = self.auth.require_client_cert || self.auth.tokens.is_some();
        tracing::info!(
            tls,
            client_certificates = self.auth.require_client_cert,
            bearer_tokens = self.auth.tokens.as_ref().map_or(0, |t| t.len()),
            "transport security"
        );
        if address.ip().to_canonical().is_loopback() {
            return;
        }
        if !tls {
            tracing::warn!(%address, "listening beyond loopback without TLS: requests, results and any bearer tokens cross the network in plaintext; set --tls-cert and --tls-key");
        }
        if !authenticated {
            tracing::warn!(%address, "listening beyond loopback without authentication: anyone who can reach the port can use the models; set --auth-tokens or --tls-client-ca");
        }
    }
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, SecurityError> {
    std::fs::read(path).map_err(|cause| SecurityError::Read {
        flag,
        path: path.to_path_buf(),
        cause,
    })
}

fn invalid(flag: &'static str, path: &Path, reason: impl Into<String>) -> SecurityError {
    SecurityError::Invalid {
        flag,
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The PEM certificates in a file; at least one.
fn read_certificates(flag: &'static str, path: &Path) -> Result<Vec<u8>, SecurityError> {
    let pem = read(flag, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(flag, path, format!("not a PEM certificate file ({e})")))?;
    if certs.is_empty() {
        return Err(invalid(
            flag,
            path,
            "no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(pem)
}

/// The server identity and, with `client_ca`, client-certificate verification; each file
/// is checked on its own first, so the error names the one at fault.
fn load_tls(
    cert_path: &Path,
    key_path: &Path,
    client_ca: Option<&Path>,
) -> Result<ServerTlsConfig, SecurityError> {
    let cert = read_certificates("--tls-cert", cert_path)?;
    let key = read("--tls-key", key_path)?;
    match PrivateKeyDer::from_pem_slice(&key) {
        Ok(_) => {}
        Err(pem::Error::NoItemsFound) => {
            return Err(invalid(
                "--tls-key",
                key_path,
                "no private key in it (expected PEM: -----BEGIN PRIVATE KEY-----, or the RSA or EC form)",
            ))
        }
        Err(e) => {
            return Err(invalid(
                "--tls-key",
                key_path,
                format!("not a PEM private key ({e})"),
            ))
        }
    }
    let config = ServerTlsConfig::new()
        .identity(Identity::from_pem(cert, key))
        .timeout(TLS_HANDSHAKE_TIMEOUT);
    // Building the acceptor is what checks that the key belongs to the certificate.
    if let Err(e) = Server::builder().tls_config(config.clone()) {
        return Err(invalid(
            "--tls-key",
            key_path,
            format!(
                "does not fit the certificate in --tls-cert {} ({})",
                cert_path.display(),
                causes(&e)
            ),
        ));
    }
    let Some(ca_path) = client_ca else {
        return Ok(config);
    };
    let ca = read_certificates("--tls-client-ca", ca_path)?;
    // A connection without a certificate is let through TLS so that health probes work;
    // `Auth` refuses its calls to everything else. A certificate that is presented must
    // chain to this CA, or the handshake fails.
    let config = config
        .client_ca_root(Certificate::from_pem(ca))
        .client_auth_optional(true);
    if let Err(e) = Server::builder().tls_config(config.clone()) {
        return Err(invalid("--tls-client-ca", ca_path, causes(&e)));
    }
    Ok(config)
}

/// What a tonic transport error wraps, on one line: the error itself says only
/// "transport error", its sources say what rustls refused.
fn causes(error: &tonic::transport::Error) -> String {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        causes.push(e.to_string());
        source = e.source();
    }
    if causes.is_empty() {
        error.to_string()
    } else {
        causes.join(": ")
    }
}

fn load_tokens(path: &Path) -> Result<Arc<[[u8; 32]]>, SecurityError> {
    let flag = "--auth-tokens";
    let bytes = read(flag, path)?;
    let text = String::from_utf8(bytes).map_err(|_| invalid(flag, path, "not UTF-8 text"))?;
    let tokens = parse_tokens(&text).map_err(|reason| invalid(flag, path, reason))?;
    for (line, token) in &tokens {
        if token.len() < MIN_TOKEN_CHARS {
            tracing::warn!(file = %path.display(), line, "a bearer token shorter than {MIN_TOKEN_CHARS} characters is easy to guess");
        }
    }
    Ok(tokens.into_iter().map(|(_, t)| digest(t)).collect())
}

/// The tokens of a token file with their line numbers: one per line, surrounding
/// whitespace trimmed, blank lines and `#` comments skipped.
///
/// # Errors
/// The reason, naming the line, when a token has characters an HTTP header cannot carry
/// (the token itself is never repeated), or when the file holds no token.
pub fn parse_tokens(text: &str) -> Result<Vec<(usize, &str)>, String> {
    let mut tokens = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let token = line.trim();
        if token.is_empty() || token.starts_with('#') {
            continue;
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "line {}: a token must be printable ASCII without spaces",
                index + 1
            ));
        }
        tokens.push((index + 1, token));
    }
    if tokens.is_empty() {
        return Err("no token in it (one per line; blank lines and # comments are skipped)".into());
    }
    Ok(tokens)
}

/// Tokens are kept and compared as SHA-256 digests: equal length for every candidate, so
/// the comparison time says nothing about the token's length or content.
fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The interceptor in front of gist's services and reflection: with mTLS on, the call's
/// connection must have presented a client certificate (TLS has already verified it);
/// with tokens on, the call must carry one of them as `authorization: Bearer <token>`.
/// Refusals are `UNAUTHENTICATED`. With neither on, every call passes.
#[derive(Clone, Default)]
pub struct Auth {
    tokens: Option<Arc<[[u8; 32]]>>,
    require_client_cert: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("tokens", &self.tokens.as_ref().map_or(0, |t| t.len()))
            .field("require_client_cert", &self.require_client_cert)
            .finish()
    }
}

impl Interceptor for Auth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        if self.require_client_cert && request.peer_certs().is_none_or(|c| c.is_empty()) {
            tracing::debug!(peer = ?request.remote_addr(), "refused: no client certificate");
            return Err(Status::unauthenticated(MISSING_CLIENT_CERT));
        }
        if let Some(tokens) = &self.tokens {
            if let Err(status) = check_bearer(request.metadata(), tokens) {
                tracing::debug!(peer = ?request.remote_addr(), reason = status.message(), "refused");
                return Err(status);
            }
        }
        Ok(request)
    }
}

/// Compare the call's bearer token with every configured token, all of them every time,
/// so neither timing nor early exit tells which one (if any) came close.
fn check_bearer(metadata: &MetadataMap, tokens: &[[u8; 32]]) -> Result<(), Status> {
    let token = metadata
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| Status::unauthenticated(MISSING_TOKEN))?;
    let presented = digest(token);
    let matched = tokens
        .iter()
        .fold(Choice::from(0), |any, t| any | t.ct_eq(&presented));
    if bool::from(matched) {
        Ok(())
    } else {
        Err(Status::unauthenticated(INVALID_TOKEN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_skip_blanks_and_comments_and_trim() {
        let text = "# gist clients\n\n  alpha-0123456789abcdef  \n\t# retired: old\nbeta\r\n";
        assert_eq!(
            parse_tokens(text).unwrap(),
            vec![(3, "alpha-0123456789abcdef"), (5, "beta")]
        );
    }

    #[test]
    fn token_files_without_tokens_or_with_spaces_are_refused() {
        for text in ["", "\n\n", "# only a comment\n   \n"] {
            assert!(parse_tokens(text).unwrap_err().starts_with("no token"));
        }
        let err = parse_tokens("good\nhas space\n").unwrap_err();
        assert_eq!(
            err,
            "line 2: a token must be printable ASCII without spaces"
        );
        assert!(!err.contains("space\n"), "the token is not echoed");
        assert!(parse_tokens("tökén\n").is_err());
    }

    fn metadata(authorization: Option<&str>) -> MetadataMap {
        let mut map = MetadataMap::new();
        if let Some(value) = authorization {
            map.insert("authorization", value.parse().unwrap());
        }
        map
    }

    #[test]
    fn bearer_tokens_are_checked_against_every_configured_token() {
        let tokens = [digest("first-token"), digest("second-token")];
        for ok in [
            "Bearer first-token",
            "Bearer second-token",
            "bearer second-token",
            "BEARER  first-token ",
        ] {
            assert!(check_bearer(&metadata(Some(ok)), &tokens).is_ok(), "{ok}");
        }
        for (header, message) in [
            (None, MISSING_TOKEN),
            (Some("first-token"), MISSING_TOKEN),
            (Some("Basic Zmlyc3QtdG9rZW4="), MISSING_TOKEN),
            (Some("Bearer "), MISSING_TOKEN),
            (Some("Bearer first"), INVALID_TOKEN),
            (Some("Bearer first-token2"), INVALID_TOKEN),
            (Some("Bearer FIRST-TOKEN"), INVALID_TOKEN),
        ] {
            let status = check_bearer(&metadata(header), &tokens).unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{header:?}");
            assert_eq!(status.message(), message, "{header:?}");
        }
    }
}
