//! People's accounts: what a login name may be.

/// Longest login name.
pub const MAX_USERNAME_LEN: usize = 64;

/// Why a login name cannot be used, if it cannot: 1 to 64 letters, digits,
/// `.`, `_` or `-`, starting with a letter or digit (it appears in URLs,
/// the audit trail and CSV files, so nothing there needs escaping).
pub fn check_username(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.chars().count() > MAX_USERNAME_LEN {
        return Err(format!("a username has 1 to {MAX_USERNAME_LEN} characters"));
    }
    if !name.chars().all(ok_char) || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "username {name:?}: letters, digits, '.', '_' and '-' only, starting with a letter or digit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_plain() {
        for good in ["ann", "Ann.B", "a_1-2", "7eleven"] {
            assert!(check_username(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-ann",
            ".ann",
            "ann b",
            "ann/b",
            "ann,b",
            "é",
            &"a".repeat(65),
        ] {
            assert!(check_username(bad).is_err(), "{bad:?}");
        }
        assert!(check_username(&"a".repeat(64)).is_ok());
    }
}
