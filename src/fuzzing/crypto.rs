//! `keyring`: the keyring file parser (plain and sealed) and the sealed-file parser, without
//! the PBKDF2 derivation (100k+ rounds per input would make fuzzing pointless): sealed inputs
//! are opened with a key derived once per process.

use std::path::Path;
use std::sync::OnceLock;

use zeroize::Zeroizing;

use crate::crypto::seal::{self, SealKey, SealedFile};
use crate::crypto::{Keyring, KeyringError};

fn seal_key() -> &'static SealKey {
    static KEY: OnceLock<SealKey> = OnceLock::new();
    KEY.get_or_init(|| SealKey::new(b"fuzz", seal::MIN_ITERATIONS).expect("rng"))
}

fn no_passphrase() -> Result<Zeroizing<Vec<u8>>, KeyringError> {
    Err(KeyringError::PassphraseNeeded("fuzz.json".into()))
}

/// A parsed keyring writes back to a file that parses to the same keys.
fn check_round_trip(k: &Keyring) {
    let json = k.to_plain_json().expect("a keyring serializes");
    let again = Keyring::from_bytes(Path::new("fuzz.json"), &json, no_passphrase)
        .expect("a written keyring reads back");
    assert_eq!(again.fingerprint(), k.fingerprint());
    assert_eq!(again.kek_versions(), k.kek_versions());
    assert_eq!(again.active_kek_version(), k.active_kek_version());
    assert!(k.kek_versions().contains(&k.active_kek_version()));
}

pub fn keyring(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let path = Path::new("fuzz.json");
    if sel % 2 == 0 {
        // The bytes as a keyring file. A sealed one asks for the passphrase: refuse, so no KDF.
        let asked = std::cell::Cell::new(false);
        let parsed = Keyring::from_bytes(path, rest, || {
            asked.set(true);
            Err(KeyringError::PassphraseNeeded(path.to_owned()))
        });
        if let Ok(k) = &parsed {
            assert!(!asked.get());
            check_round_trip(k);
        }
        // And as a sealed file, opened with the process key (authentication must fail unless
        // the input really was sealed with it).
        if let Ok(file) = serde_json::from_slice::<SealedFile>(rest) {
            if let Ok(plain) = seal::open_with_key(&file, seal_key()) {
                let _ = Keyring::from_bytes(path, &plain, no_passphrase);
            }
        }
    } else {
        // The bytes as the plaintext of a sealed keyring: seal, write, parse, open.
        let file = seal::seal(seal_key(), rest).expect("sealing succeeds");
        let json = Zeroizing::new(serde_json::to_vec(&file).expect("serializes"));
        let back: SealedFile = serde_json::from_slice(&json).expect("parses back");
        let plain = seal::open_with_key(&back, seal_key()).expect("opens with its key");
        assert_eq!(plain.as_slice(), rest);
        if let Ok(k) = Keyring::from_bytes(path, &plain, no_passphrase) {
            check_round_trip(&k);
        }
    }
}
