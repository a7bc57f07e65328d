//! The user list: htpasswd lines (`name:hash`), their hash schemes, and checking a password
//! against one.

use std::collections::HashMap;
use subtle::ConstantTimeEq;

/// How a user's password is stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Scheme {
    /// `$2a$`, `$2b$`, `$2x$`, `$2y$`.
    Bcrypt,
    /// `$argon2id$` (and `$argon2i$`, `$argon2d$`).
    Argon2,
    /// `$5$` (SHA-256-crypt).
    Sha256Crypt,
    /// `$6$` (SHA-512-crypt).
    Sha512Crypt,
    /// The password itself (only with `allow-plain`).
    Plain,
}

/// One user.
#[derive(Debug, Clone)]
pub struct User {
    pub scheme: Scheme,
    /// The hash (or, for [`Scheme::Plain`], the password), as written.
    pub stored: String,
}

/// Schemes that are recognised but refused: too fast to resist a stolen file.
const WEAK: &[(&str, &str)] = &[
    ("$apr1$", "Apache MD5 ($apr1$)"),
    ("$1$", "MD5-crypt ($1$)"),
    ("{SHA}", "unsalted SHA-1 ({SHA})"),
];

fn scheme(hash: &str, allow_plain: bool) -> Result<Scheme, String> {
    if let Some((_, what)) = WEAK.iter().find(|(p, _)| hash.starts_with(p)) {
        return Err(format!(
            "{what} is too weak to accept: rehash it with bcrypt (htpasswd -B) or argon2id"
        ));
    }
    let scheme = if ["$2a$", "$2b$", "$2x$", "$2y$"]
        .iter()
        .any(|p| hash.starts_with(p))
    {
        hash.parse::<bcrypt::HashParts>()
            .map_err(|e| format!("is not a valid bcrypt hash ({e})"))?;
        Scheme::Bcrypt
    } else if hash.starts_with("$argon2") {
        let h = argon2::PasswordHash::new(hash)
            .map_err(|e| format!("is not a valid argon2 hash ({e})"))?;
        let complete = h.hash.is_some() && h.salt.is_some();
        if !complete || argon2::Params::try_from(&h).is_err() {
            return Err(
                "is not a valid argon2 hash (it needs parameters, a salt and a hash)".into(),
            );
        }
        Scheme::Argon2
    } else if hash.starts_with("$5$") {
        Scheme::Sha256Crypt
    } else if hash.starts_with("$6$") {
        Scheme::Sha512Crypt
    } else if allow_plain {
        Scheme::Plain
    } else {
        return Err(
            "is not a bcrypt, argon2 or SHA-crypt hash (a plain-text password needs allow-plain = true)"
                .into(),
        );
    };
    Ok(scheme)
}

/// Parse `name:hash` lines (blank lines and `#` comments skipped); errors name the entry.
pub fn parse(lines: &[String], allow_plain: bool) -> Result<HashMap<String, User>, String> {
    let mut users = HashMap::new();
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, stored)) = line.split_once(':') else {
            return Err(format!("users[{i}]: expected \"name:hash\""));
        };
        if name.is_empty() {
            return Err(format!("users[{i}]: the user name is empty"));
        }
        let scheme =
            scheme(stored, allow_plain).map_err(|why| format!("users[{i}] ({name}): {why}"))?;
        let user = User {
            scheme,
            stored: stored.to_string(),
        };
        if users.insert(name.to_string(), user).is_some() {
            return Err(format!("users[{i}]: {name:?} is listed twice"));
        }
    }
    if users.is_empty() {
        return Err("users: name at least one user".into());
    }
    Ok(users)
}

impl User {
    /// Whether `password` is this user's. Plain text is compared in constant time; the
    /// hash libraries compare their digests in constant time.
    pub fn verify(&self, password: &str) -> bool {
        match self.scheme {
            // Passwords past bcrypt's 72 bytes fail rather than match on their first 72.
            Scheme::Bcrypt => {
                bcrypt::non_truncating_verify(password, &self.stored).unwrap_or(false)
            }
            Scheme::Argon2 => {
                use argon2::PasswordVerifier;
                argon2::PasswordHash::new(&self.stored).is_ok_and(|h| {
                    argon2::Argon2::default()
                        .verify_password(password.as_bytes(), &h)
                        .is_ok()
                })
            }
            Scheme::Sha256Crypt => sha_crypt::sha256_check(password, &self.stored).is_ok(),
            Scheme::Sha512Crypt => sha_crypt::sha512_check(password, &self.stored).is_ok(),
            Scheme::Plain => password.as_bytes().ct_eq(self.stored.as_bytes()).into(),
        }
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Hashes of test passwords, made with the same crates and checked against glibc's
    /// crypt (SHA-crypt) when written.
    pub const BCRYPT: &str = "ada:$2y$04$KBCwKxOzLha2MUDgW0PjXe9b1DxIEkVo6xSca/TrCtEXnT7desnbu"; // s3cret
    pub const ARGON2: &str = "bob:$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$TG3TNh0UlIp7ZkGKbHzVmoKy3QnTx9+peBju9GgIUrQ"; // hunter2
    pub const SHA256: &str = "cy:$5$3KqWxnweoKxPAg.T$tYFLLJi.NDBazeHITtT6JCkNXl9zpVg6EWR38I7MEEA"; // pa55
    pub const SHA256_ROUNDS: &str =
        "cy2:$5$rounds=10000$abcdefgh$EeM34ETAeG73zTbtklijo6B8y0.SkQhOr79rE0SUeX2"; // pa55
    pub const SHA512: &str = "di:$6$1ZpGhzHoL38L.J7R$cSTlq.tXR7ZvBlKrPPaPTyDbTTNPh8vtonpdybmyHLkiIlveXVYFOVhfa3yVhAce6DHu2KNDcADraORvCUHRx1"; // pa55
    pub const UTF8: &str = "eve:$2b$04$XkTiW0HfMRe1LhSyKxGvK./c0j8FXkGp8PW6/e7V0.Vhco/myqOli"; // pässwörd

    fn lines(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_scheme_verifies_its_password_and_nothing_else() {
        let users = parse(
            &lines(&[
                BCRYPT,
                ARGON2,
                SHA256,
                SHA256_ROUNDS,
                SHA512,
                UTF8,
                "# comment",
                "",
            ]),
            false,
        )
        .unwrap();
        for (name, pw) in [
            ("ada", "s3cret"),
            ("bob", "hunter2"),
            ("cy", "pa55"),
            ("cy2", "pa55"),
            ("di", "pa55"),
            ("eve", "pässwörd"),
        ] {
            let u = &users[name];
            assert!(u.verify(pw), "{name}");
            assert!(!u.verify(&format!("{pw}x")), "{name}");
            assert!(!u.verify(""), "{name}");
        }
        assert_eq!(users["bob"].scheme, Scheme::Argon2);
    }

    #[test]
    fn bcrypt_does_not_match_on_the_first_72_bytes_only() {
        // bcrypt reads the password and its NUL, 72 bytes at most.
        let long = "a".repeat(71);
        let u = User {
            scheme: Scheme::Bcrypt,
            stored: bcrypt_of_71_a(),
        };
        assert!(u.verify(&long));
        assert!(!u.verify(&format!("{long}anything")));
    }

    /// bcrypt("a" × 71), cost 4.
    fn bcrypt_of_71_a() -> String {
        "$2b$04$KBCwKxOzLha2MUDgW0PjXecEcm5teoM3t82pnGlBmdnf0LIM4LTCS".into()
    }

    #[test]
    fn weak_unknown_and_malformed_entries_are_refused_by_name() {
        let err = |l: &str, plain: bool| parse(&lines(&[BCRYPT, l]), plain).unwrap_err();
        assert!(err("x:$apr1$abc$def", false).contains("users[1] (x): Apache MD5"));
        assert!(err("x:{SHA}abc=", true).contains("too weak"));
        assert!(err("x:secret", false).contains("allow-plain = true"));
        assert!(err("x:$2b$04$short", false).contains("not a valid bcrypt"));
        assert!(err("x:$argon2id$nonsense", false).contains("not a valid argon2"));
        assert!(err("nocolon", false).contains("users[1]: expected"));
        assert!(err(":hash", false).contains("empty"));
        assert!(err(
            "ada:$2b$04$KBCwKxOzLha2MUDgW0PjXe9b1DxIEkVo6xSca/TrCtEXnT7desnbu",
            false
        )
        .contains("twice"));
        assert!(parse(&[], false).unwrap_err().contains("at least one"));
        let plain = parse(&lines(&["x:secret"]), true).unwrap();
        assert!(plain["x"].verify("secret") && !plain["x"].verify("secreT"));
    }
}
