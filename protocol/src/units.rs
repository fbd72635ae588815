//! Units spelled the same way in every tool: operator input shared by `chatctl` and
//! `chat-loadgen` (durations `24h`, `365d`; rates `30/min`, `500/s`) and byte sizes as
//! `chatctl` and `chat-tui` print them ([`human_bytes`]).

use std::time::Duration;

/// Input that is not a valid duration or rate; the message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitError(pub String);

impl std::fmt::Display for UnitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UnitError {}

type Result<T> = std::result::Result<T, UnitError>;

macro_rules! bail {
    ($($arg:tt)*) => { return Err(UnitError(format!($($arg)*))) };
}

/// `90s`, `30m`, `24h`, `7d`, `2w` (a bare number is refused: units are mandatory).
pub fn duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = match num.parse() {
        Ok(n) if n > 0 => n,
        _ => {
            bail!("invalid duration {s:?}: expected a positive number and a unit, e.g. 24h or 365d")
        }
    };
    let secs = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => bail!("invalid duration {s:?}: unit must be s, m, h, d or w"),
    };
    n.checked_mul(secs)
        .map(Duration::from_secs)
        .ok_or_else(|| UnitError(format!("invalid duration {s:?}: too large")))
}

/// `N/PERIOD` with PERIOD one of `s`, `sec`, `min`, `h`, `hour`, `day`.
pub fn rate(s: &str) -> Result<(u32, u32)> {
    let Some((n, period)) = s.trim().split_once('/') else {
        bail!("invalid rate {s:?}: expected N/PERIOD, e.g. 30/min");
    };
    let n: u32 = match n.trim().parse() {
        Ok(n) if n > 0 => n,
        _ => bail!("invalid rate {s:?}: N must be a positive integer"),
    };
    let period = match period.trim() {
        "s" | "sec" | "second" => 1,
        "min" | "minute" => 60,
        "h" | "hour" => 3600,
        "day" => 86_400,
        other => bail!("invalid rate {s:?}: unknown period {other:?} (use s, min, h or day)"),
    };
    Ok((n, period))
}

/// A byte count for people, in binary units: `512 B`, `12.0 KiB`, `3.4 MiB`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(duration("365d").unwrap(), Duration::from_secs(365 * 86_400));
        for bad in ["", "24", "h", "-1h", "0d", "3y", "1.5h"] {
            assert!(duration(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn rates() {
        assert_eq!(rate("30/min").unwrap(), (30, 60));
        assert_eq!(rate("5/s").unwrap(), (5, 1));
        for bad in ["30/hr", "-1/min", "0/min", "30", "x/min", "30/"] {
            assert!(rate(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn human_bytes_uses_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(12 * 1024), "12.0 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 + 400 * 1024), "3.4 MiB");
        assert_eq!(human_bytes(u64::MAX), "16777216.0 TiB");
    }
}
