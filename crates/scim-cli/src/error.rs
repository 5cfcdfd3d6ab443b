//! One error type for the whole CLI: printed as a single line.

use std::fmt;

#[derive(Debug)]
pub(crate) struct CliError(pub(crate) String);

pub(crate) type Result<T> = std::result::Result<T, CliError>;

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keep it on one line whatever the server or the OS said.
        let one_line: String = self
            .0
            .chars()
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
            .collect();
        f.write_str(one_line.trim())
    }
}

impl From<scim_client::Error> for CliError {
    fn from(e: scim_client::Error) -> Self {
        CliError(e.to_string())
    }
}

/// An error with the thing it concerns, e.g. a file name.
pub(crate) fn err(msg: impl Into<String>) -> CliError {
    CliError(msg.into())
}

pub(crate) fn io_err(what: &std::path::Path, e: std::io::Error) -> CliError {
    CliError(format!("{}: {e}", what.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line() {
        let e = err("first\nsecond\r\n");
        assert_eq!(e.to_string(), "first second");
    }
}
