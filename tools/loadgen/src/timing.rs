//! The functions' own account of a request, from its `Server-Timing` header
//! (`shared/edge/src/http.rs`): `aws;dur=<ms>;desc="calls=N round-trips=M", app;dur=<ms>`.

/// What one answer says about its invocation; `None` where the header lacks the entry.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServerTiming {
    /// Time with at least one AWS call in flight.
    pub aws_ms: Option<f64>,
    /// The handler's wall time.
    pub app_ms: Option<f64>,
    pub calls: Option<u32>,
    pub round_trips: Option<u32>,
}

impl ServerTiming {
    pub fn parse(header: &str) -> Self {
        let mut timing = ServerTiming::default();
        // Entries are comma-separated; the `desc` strings hold no commas.
        for entry in header.split(',') {
            let mut params = entry.split(';').map(str::trim);
            let name = params.next().unwrap_or_default();
            let mut dur = None;
            let mut desc = "";
            for param in params {
                if let Some(v) = param.strip_prefix("dur=") {
                    dur = v.parse::<f64>().ok();
                } else if let Some(v) = param.strip_prefix("desc=") {
                    desc = v.trim_matches('"');
                }
            }
            match name {
                "aws" => {
                    timing.aws_ms = dur;
                    for field in desc.split_whitespace() {
                        if let Some(v) = field.strip_prefix("calls=") {
                            timing.calls = v.parse().ok();
                        } else if let Some(v) = field.strip_prefix("round-trips=") {
                            timing.round_trips = v.parse().ok();
                        }
                    }
                }
                "app" => timing.app_ms = dur,
                _ => {}
            }
        }
        timing
    }

    /// Our own time in the handler: its wall time less the time AWS calls were in flight.
    pub fn own_ms(&self) -> Option<f64> {
        Some((self.app_ms? - self.aws_ms?).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_entries_are_read() {
        let t = ServerTiming::parse("aws;dur=24.5;desc=\"calls=18 round-trips=2\", app;dur=26.0");
        assert_eq!(
            t,
            ServerTiming {
                aws_ms: Some(24.5),
                app_ms: Some(26.0),
                calls: Some(18),
                round_trips: Some(2)
            }
        );
        assert_eq!(t.own_ms(), Some(1.5));
    }

    #[test]
    fn an_older_header_without_app_gives_no_own_time() {
        let t = ServerTiming::parse("aws;dur=3.0;desc=\"calls=2 round-trips=1\"");
        assert_eq!((t.calls, t.round_trips, t.app_ms), (Some(2), Some(1), None));
        assert_eq!(t.own_ms(), None);
        assert_eq!(ServerTiming::parse("").calls, None);
    }
}
