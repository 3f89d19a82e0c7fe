//! The checks a frame passes before it is decoded: its sequence number and the stream's
//! frame rate.

use std::time::Instant;

use costream_proto::v1::ErrorCode;

use crate::error::ProtocolError;

/// Sequence numbers are stored as signed 64-bit integers.
const MAX_SEQ: u64 = i64::MAX as u64;

/// A stream's frame admission: increasing sequence numbers and a token-bucket rate limit.
#[derive(Debug, Clone)]
pub(crate) struct Intake {
    last_seq: Option<u64>,
    rate: Option<TokenBucket>,
}

/// Allows `rate` frames per second on average with bursts of up to one second's worth.
#[derive(Debug, Clone)]
struct TokenBucket {
    rate: f64,
    tokens: f64,
    refilled: Instant,
}

impl Intake {
    /// Admission after frame `last_seq` (none yet: `None`), at most `max_frames_per_second`
    /// (0: no limit).
    pub(crate) fn new(last_seq: Option<u64>, max_frames_per_second: f64, now: Instant) -> Intake {
        let rate = (max_frames_per_second > 0.0).then(|| TokenBucket {
            rate: max_frames_per_second,
            tokens: max_frames_per_second.max(1.0),
            refilled: now,
        });
        Intake { last_seq, rate }
    }

    /// Checks frame `seq` arriving at `now`; takes a token for it if it passes.
    ///
    /// # Errors
    /// `BAD_SEQ` for a number that does not increase or is too large, `RATE_LIMITED` when the
    /// stream is over its rate.
    pub(crate) fn check(&mut self, seq: u64, now: Instant) -> Result<(), ProtocolError> {
        if seq > MAX_SEQ {
            return Err(ProtocolError::frame(
                ErrorCode::BadSeq,
                seq,
                format!("seq {seq} exceeds the largest sequence number, {MAX_SEQ}"),
            ));
        }
        if let Some(last) = self.last_seq.filter(|&last| seq <= last) {
            return Err(ProtocolError::frame(
                ErrorCode::BadSeq,
                seq,
                format!("seq {seq} does not increase: the last accepted frame was {last}"),
            ));
        }
        if let Some(bucket) = &mut self.rate {
            let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * bucket.rate).min(bucket.rate.max(1.0));
            bucket.refilled = now;
            if bucket.tokens < 1.0 {
                return Err(ProtocolError::frame(
                    ErrorCode::RateLimited,
                    seq,
                    format!(
                        "max_frames_per_second = {} exceeded: frame {seq} refused",
                        bucket.rate
                    ),
                ));
            }
            bucket.tokens -= 1.0;
        }
        Ok(())
    }

    /// Records that frame `seq` was accepted.
    pub(crate) fn accepted(&mut self, seq: u64) {
        self.last_seq = Some(seq);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn sequence_numbers_must_increase_over_accepted_frames() {
        let now = Instant::now();
        let mut intake = Intake::new(None, 0.0, now);
        assert!(intake.check(0, now).is_ok());
        intake.accepted(0);
        let err = intake.check(0, now).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadSeq);
        assert_eq!(err.seq, Some(0));
        // A refused frame does not move the sequence on.
        assert!(intake.check(5, now).is_ok());
        assert!(intake.check(3, now).is_ok());
        assert_eq!(
            intake.check(u64::MAX, now).unwrap_err().code,
            ErrorCode::BadSeq
        );
    }

    #[test]
    fn the_rate_limit_allows_a_one_second_burst_then_the_rate() {
        let start = Instant::now();
        let mut intake = Intake::new(None, 10.0, start);
        for seq in 0..10 {
            assert!(intake.check(seq, start).is_ok(), "frame {seq} of the burst");
            intake.accepted(seq);
        }
        let err = intake.check(10, start).unwrap_err();
        assert_eq!(err.code, ErrorCode::RateLimited);
        assert!(
            err.message.contains("max_frames_per_second = 10"),
            "{}",
            err.message
        );
        let later = start + Duration::from_millis(100);
        assert!(
            intake.check(10, later).is_ok(),
            "one token back after 0.1 s"
        );
        assert!(intake.check(11, later).is_err());
    }
}
