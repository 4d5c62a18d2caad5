//! Command-line flags of the benchmark binaries: `--name value`, sizes with units.

use anyhow::bail;

/// The value after `flag`, when given.
pub fn text_flag<'a>(arguments: &'a [String], flag: &str) -> Option<&'a str> {
    arguments.iter().position(|argument| argument == flag).and_then(|index| arguments.get(index + 1)).map(String::as_str)
}

/// Fails on anything in `arguments` but `known` flags, each followed by its value, so a
/// mistyped flag never starts a run of the full size.
pub fn reject_unknown(arguments: &[String], known: &[&str]) -> anyhow::Result<()> {
    let mut index = 0;
    while index < arguments.len() {
        let argument = &arguments[index];
        if !known.contains(&argument.as_str()) {
            bail!("unexpected argument {argument:?}; flags here: {}", known.join(", "));
        }
        if index + 1 >= arguments.len() {
            bail!("{argument} needs a value");
        }
        index += 2;
    }
    Ok(())
}

/// The value of `flag` as a number: `1000000`, `1_000_000`, or with a unit: `2GB`, `500MB`,
/// `1GiB`, `64MiB`, `20k`.
pub fn number_flag(arguments: &[String], flag: &str) -> anyhow::Result<Option<u64>> {
    match text_flag(arguments, flag) {
        None if arguments.iter().any(|argument| argument == flag) => bail!("{flag} needs a value"),
        None => Ok(None),
        Some(text) => match parse_size(text) {
            Some(value) => Ok(Some(value)),
            None => bail!("{flag} {text:?} is not a number (examples: 20000, 20k, 2GB, 64MiB)"),
        },
    }
}

/// Parses `20000`, `20_000`, `20k`, `2GB`, `500MB`, `64MiB`, `1GiB`.
pub fn parse_size(text: &str) -> Option<u64> {
    let cleaned = text.trim().replace('_', "");
    let split = cleaned.find(|character: char| !character.is_ascii_digit() && character != '.').unwrap_or(cleaned.len());
    let (number, unit) = cleaned.split_at(split);
    let multiplier: f64 = match unit.to_ascii_lowercase().as_str() {
        "" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    Some((value * multiplier).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_flags_and_missing_values_are_refused() {
        let arguments = |list: &[&str]| list.iter().map(|argument| (*argument).to_owned()).collect::<Vec<_>>();
        assert!(reject_unknown(&arguments(&["--messages", "20k"]), &["--messages"]).is_ok());
        assert!(reject_unknown(&arguments(&["--message", "20k"]), &["--messages"]).is_err());
        assert!(reject_unknown(&arguments(&["--messages"]), &["--messages"]).is_err());
        assert!(reject_unknown(&arguments(&["20000"]), &["--messages"]).is_err());
        assert_eq!(number_flag(&arguments(&["--messages", "20k"]), "--messages").unwrap(), Some(20_000));
        assert!(number_flag(&arguments(&["--messages", "many"]), "--messages").is_err());
    }

    #[test]
    fn sizes_take_units() {
        assert_eq!(parse_size("20000"), Some(20_000));
        assert_eq!(parse_size("1_000_000"), Some(1_000_000));
        assert_eq!(parse_size("20k"), Some(20_000));
        assert_eq!(parse_size("2GB"), Some(2_000_000_000));
        assert_eq!(parse_size("0.5GB"), Some(500_000_000));
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("5 parsecs"), None);
    }
}
