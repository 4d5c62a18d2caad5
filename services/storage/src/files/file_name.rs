//! The rules a file's new name follows when it is renamed: one name without folders, as
//! downloads write it to disk, and nothing a terminal or a `Content-Disposition` header
//! would read as a command. Pure, so the rules are tested without IO.

use crate::Error;

/// The longest name accepted, in bytes of UTF-8 (what most file systems allow).
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// Returns `name` without surrounding whitespace when it is a valid file name; refuses an
/// empty name, `.` and `..`, a name with `/` or `\`, with control characters, or longer than
/// [`MAX_FILE_NAME_BYTES`], each with a message the caller can act on.
pub fn validated_new_file_name(name: &str) -> Result<String, Error> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::InvalidArgument("the new name is empty".to_owned()));
    }
    if name == "." || name == ".." {
        return Err(Error::InvalidArgument(format!("{name:?} is not a file name")));
    }
    if name.contains(['/', '\\']) {
        return Err(Error::InvalidArgument("the new name cannot contain / or \\ (files are not kept in folders)".to_owned()));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::InvalidArgument("the new name cannot contain control characters".to_owned()));
    }
    if name.len() > MAX_FILE_NAME_BYTES {
        return Err(Error::InvalidArgument(format!("the new name is {} bytes long; at most {MAX_FILE_NAME_BYTES} are allowed", name.len())));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(name: &str) -> String {
        match validated_new_file_name(name) {
            Err(Error::InvalidArgument(message)) => message,
            other => panic!("{name:?} is refused as an invalid argument, not {other:?}"),
        }
    }

    #[test]
    fn plain_and_unicode_names_are_kept_without_surrounding_whitespace() {
        assert_eq!(validated_new_file_name("report 2026.pdf").expect("valid"), "report 2026.pdf");
        assert_eq!(validated_new_file_name("  отчёт.pdf \t").expect("valid"), "отчёт.pdf");
        assert_eq!(validated_new_file_name(".hidden").expect("valid"), ".hidden");
        assert_eq!(validated_new_file_name("a..b").expect("valid"), "a..b");
    }

    #[test]
    fn empty_and_dot_names_are_refused() {
        assert_eq!(refusal(""), "the new name is empty");
        assert_eq!(refusal("   "), "the new name is empty");
        assert!(refusal(".").contains("not a file name"));
        assert!(refusal("..").contains("not a file name"));
    }

    #[test]
    fn folders_are_refused_with_either_separator() {
        for name in ["a/b.txt", "a\\b.txt", "/etc/passwd", "dir/", "..\\up"] {
            assert!(refusal(name).contains("cannot contain / or \\"), "{name:?}");
        }
    }

    #[test]
    fn control_characters_are_refused() {
        for name in ["a\u{0}b", "bell\u{7}", "esc\u{1b}[31m", "new\nline", "tab\tin", "c1\u{9b}", "del\u{7f}"] {
            assert_eq!(refusal(name), "the new name cannot contain control characters", "{name:?}");
        }
    }

    #[test]
    fn the_limit_counts_bytes_not_characters() {
        assert!(validated_new_file_name(&"a".repeat(MAX_FILE_NAME_BYTES)).is_ok());
        assert!(refusal(&"a".repeat(MAX_FILE_NAME_BYTES + 1)).contains("256 bytes"));
        // 128 two-byte letters: 128 characters, 256 bytes.
        assert!(refusal(&"ж".repeat(128)).contains("at most 255"));
        assert!(validated_new_file_name(&"ж".repeat(127)).is_ok());
    }
}
