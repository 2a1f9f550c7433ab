//! Encryption at rest: a node with `encrypt_to` stores each landed file as
//! an age file (X25519 recipients, ChaCha20-Poly1305 in 64 KiB chunks),
//! written as a stream after the plaintext's size and blake3 were checked
//! against the client's. The node holds only public keys: it can neither
//! decrypt what it stores nor be made to. Restore decrypts with the
//! operator's identity file, before the atomic landing in `--dest`.
//!
//! age does not authenticate the sender, so the catalog keeps both hashes:
//! the plaintext's (`checksum`, which restore checks after decrypting) and
//! the ciphertext's ([`Encryption::checksum`], which verify and replication
//! check without any key).

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use ubackup_common::message::Encryption;

/// Read and write in this many bytes (age's own chunk size).
const CHUNK: usize = 64 * 1024;

/// The recipients of `encrypt_to`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipients {
    /// `age1…` public keys, in the order given.
    pub keys: Vec<String>,
}

impl Recipients {
    /// Parses `encrypt_to`: `age1…` keys and/or paths of recipient files
    /// (one `age1…` a line, `#` comments), separated by commas or spaces.
    pub fn parse(spec: &str) -> Result<Recipients, String> {
        let mut keys = Vec::new();
        for token in spec.split([',', ' ', '\t']).filter(|t| !t.is_empty()) {
            if token.starts_with("age1") {
                keys.push(check(token, "")?);
            } else if token.starts_with('/') {
                let text = std::fs::read_to_string(token)
                    .map_err(|e| format!("cannot read the recipients file {token}: {e}"))?;
                let before = keys.len();
                for (n, line) in text.lines().enumerate() {
                    let line = line.split('#').next().unwrap_or("").trim();
                    if !line.is_empty() {
                        keys.push(check(line, &format!(" ({token}:{})", n + 1))?);
                    }
                }
                if keys.len() == before {
                    return Err(format!(
                        "the recipients file {token} holds no age1… recipient"
                    ));
                }
            } else {
                return Err(format!(
                    "`{token}` is neither an age X25519 recipient (age1…) nor the absolute path of a recipients file"
                ));
            }
        }
        if keys.is_empty() {
            return Err("no recipient given; expected age1… keys or a recipients file".into());
        }
        keys.dedup();
        Ok(Recipients { keys })
    }

    /// The short names the catalog records: the first 16 hex digits of the
    /// blake3 of each `age1…` key (the keys themselves are public, this is
    /// only shorter to read and to query).
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys.iter().map(|k| fingerprint(k)).collect()
    }
}

/// `blake3(age1…)[..16]` in hex.
pub fn fingerprint(key: &str) -> String {
    blake3::hash(key.as_bytes()).to_hex()[..16].to_string()
}

fn check(key: &str, at: &str) -> Result<String, String> {
    key.parse::<age::x25519::Recipient>()
        .map(|_| key.to_string())
        .map_err(|e| format!("`{key}`{at} is not an age X25519 recipient: {e}"))
}

/// Hashes what passes through to the file.
struct Hashing<W: Write> {
    inner: W,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Encrypts `plain` to `out` (created, flushed to disk) for `to`, as a
/// stream; returns what the catalog records. Blocking.
pub fn encrypt_file(to: &Recipients, plain: &Path, out: &Path) -> std::io::Result<Encryption> {
    let parsed: Vec<age::x25519::Recipient> = to
        .keys
        .iter()
        .map(|k| {
            k.parse()
                .map_err(|e: &str| std::io::Error::other(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let encryptor =
        age::Encryptor::with_recipients(parsed.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| std::io::Error::other(format!("age: {e}")))?;
    let file = std::fs::File::create(out)?;
    let sink = Hashing {
        inner: BufWriter::with_capacity(CHUNK, file),
        hasher: blake3::Hasher::new(),
        bytes: 0,
    };
    let mut writer = encryptor.wrap_output(sink)?;
    let mut input = BufReader::with_capacity(CHUNK, std::fs::File::open(plain)?);
    std::io::copy(&mut input, &mut writer)?;
    let mut sink = writer.finish()?;
    sink.flush()?;
    let file = sink
        .inner
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    // durable before it replaces anything under its final name
    file.sync_all()?;
    Ok(Encryption {
        format: "age".into(),
        recipients: to.fingerprints(),
        size: sink.bytes,
        checksum: format!("blake3:{}", sink.hasher.finalize().to_hex()),
    })
}

/// The operator's identities (an age identity file, `AGE-SECRET-KEY-1…`).
pub struct Identities(Vec<Box<dyn age::Identity>>);

impl Identities {
    pub fn load(path: &Path) -> Result<Identities, String> {
        let file = age::IdentityFile::from_file(path.display().to_string())
            .map_err(|e| format!("cannot read the identity file {}: {e}", path.display()))?;
        let ids = file
            .into_identities()
            .map_err(|e| format!("the identity file {} is not usable: {e}", path.display()))?;
        if ids.is_empty() {
            return Err(format!(
                "the identity file {} holds no identity",
                path.display()
            ));
        }
        Ok(Identities(ids))
    }
}

/// Decrypts `cipher` into `out` (created, flushed); returns the plaintext's
/// size and `blake3:<hex>`, for the caller to compare with the catalog.
/// Blocking; never holds more than a chunk in memory.
pub fn decrypt_file(ids: &Identities, cipher: &Path, out: &Path) -> Result<(u64, String), String> {
    let input = BufReader::with_capacity(
        CHUNK,
        std::fs::File::open(cipher).map_err(|e| e.to_string())?,
    );
    let decryptor = age::Decryptor::new(input).map_err(|e| format!("not an age file: {e}"))?;
    let mut reader = decryptor
        .decrypt(ids.0.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| format!("cannot decrypt (is it encrypted to this identity?): {e}"))?;
    let file = std::fs::File::create(out).map_err(|e| e.to_string())?;
    let mut sink = Hashing {
        inner: BufWriter::with_capacity(CHUNK, file),
        hasher: blake3::Hasher::new(),
        bytes: 0,
    };
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| format!("the ciphertext is damaged: {e}"))?;
        if n == 0 {
            break;
        }
        sink.write_all(&buf[..n]).map_err(|e| e.to_string())?;
    }
    sink.flush().map_err(|e| e.to_string())?;
    let file = sink.inner.into_inner().map_err(|e| e.to_string())?;
    file.sync_all().map_err(|e| e.to_string())?;
    Ok((
        sink.bytes,
        format!("blake3:{}", sink.hasher.finalize().to_hex()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_streams_and_the_hashes_match() {
        let dir = tempfile::tempdir().unwrap();
        let id = age::x25519::Identity::generate();
        let to = Recipients::parse(&id.to_public().to_string()).unwrap();
        let plain = dir.path().join("p");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&plain, &data).unwrap();
        let enc = encrypt_file(&to, &plain, &dir.path().join("c")).unwrap();
        let cipher = std::fs::read(dir.path().join("c")).unwrap();
        assert!(cipher.starts_with(b"age-encryption.org/v1"));
        assert_eq!(enc.size, cipher.len() as u64);
        assert_eq!(
            enc.checksum,
            format!("blake3:{}", blake3::hash(&cipher).to_hex())
        );
        assert_eq!(enc.recipients, vec![fingerprint(&to.keys[0])]);
        let idf = dir.path().join("id.txt");
        use age::secrecy::ExposeSecret;
        std::fs::write(
            &idf,
            format!("# test\n{}\n", id.to_string().expose_secret()),
        )
        .unwrap();
        let ids = Identities::load(&idf).unwrap();
        let (n, sum) = decrypt_file(&ids, &dir.path().join("c"), &dir.path().join("d")).unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(sum, format!("blake3:{}", blake3::hash(&data).to_hex()));
        assert_eq!(std::fs::read(dir.path().join("d")).unwrap(), data);
        // another identity cannot
        let other = dir.path().join("other.txt");
        std::fs::write(
            &other,
            age::x25519::Identity::generate()
                .to_string()
                .expose_secret(),
        )
        .unwrap();
        let e = decrypt_file(
            &Identities::load(&other).unwrap(),
            &dir.path().join("c"),
            &dir.path().join("e"),
        )
        .unwrap_err();
        assert!(e.contains("cannot decrypt"), "{e}");
    }

    #[test]
    fn recipients_from_keys_and_files_with_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let a = age::x25519::Identity::generate().to_public().to_string();
        let b = age::x25519::Identity::generate().to_public().to_string();
        let f = dir.path().join("recipients.txt");
        std::fs::write(&f, format!("# the vault\n{b}\n")).unwrap();
        let r = Recipients::parse(&format!("{a}, {}", f.display())).unwrap();
        assert_eq!(r.keys, vec![a.clone(), b]);
        assert!(Recipients::parse("age1nonsense")
            .unwrap_err()
            .contains("not an age X25519 recipient"));
        assert!(Recipients::parse("relative.txt")
            .unwrap_err()
            .contains("absolute path"));
        assert!(Recipients::parse("/nonexistent/r.txt")
            .unwrap_err()
            .contains("/nonexistent/r.txt"));
        let empty = dir.path().join("empty.txt");
        std::fs::write(&empty, "# nothing\n").unwrap();
        assert!(Recipients::parse(&empty.display().to_string())
            .unwrap_err()
            .contains("no age1"));
    }
}
