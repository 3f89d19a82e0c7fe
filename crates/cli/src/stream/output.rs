//! How `costream stream` shows answers: a table for people or JSON lines for programs on
//! stdout, and a progress bar on stderr when it is a terminal.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::ValueEnum;
use costream_proto::v1::{server_message::Msg, LabelScore, ServerMessage, VoiceActivity};

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// One aligned row per frame.
    Table,
    /// Each answer as one line of the protocol's canonical JSON (`{"prediction": {…}}`).
    Json,
}

/// Writes answers to stdout and keeps the progress bar out of their way.
#[derive(Debug)]
pub(crate) struct Printer {
    format: OutputFormat,
    progress: Progress,
    header_done: bool,
}

impl Printer {
    /// A printer in `format`, with a progress bar over `total` frames unless `quiet`.
    pub(crate) fn new(format: OutputFormat, total: Option<usize>, quiet: bool) -> Printer {
        Printer {
            format,
            progress: Progress::new(total, !quiet && std::io::stderr().is_terminal()),
            header_done: false,
        }
    }

    /// Shows one answer; `latency` is the time from sending its frame to receiving it.
    pub(crate) fn answer(&mut self, msg: &Msg, latency: Option<Duration>) {
        let line = match self.format {
            OutputFormat::Json => json_line(msg),
            OutputFormat::Table => {
                let row = table_row(msg, latency);
                if !self.header_done && row.is_some() {
                    self.header_done = true;
                    self.print(&format!(
                        "{:>7}  {:<18} {:>6}  {:<44} {:>9}",
                        "frame", "label", "score", "next best", "latency"
                    ));
                }
                row
            }
        };
        if let Some(line) = line {
            self.print(&line);
        }
    }

    /// Counts a frame answered and redraws the bar.
    pub(crate) fn answered(&mut self) {
        self.progress.done += 1;
        self.progress.draw(false);
    }

    /// Clears the progress bar for good.
    pub(crate) fn finish(&mut self) {
        self.progress.clear();
        self.progress.enabled = false;
    }

    /// A note for people, on stderr.
    pub(crate) fn note(&mut self, text: &str) {
        self.progress.clear();
        eprintln!("{text}");
        self.progress.draw(true);
    }

    fn print(&mut self, line: &str) {
        self.progress.clear();
        let mut out = std::io::stdout().lock();
        // A closed pipe (`| head`) is not worth a panic; the stream goes on to its end.
        let _ = writeln!(out, "{line}");
        self.progress.draw(true);
    }
}

/// An answer as the protocol's JSON, for the messages that concern frames and the stream.
fn json_line(msg: &Msg) -> Option<String> {
    match msg {
        Msg::Prediction(_)
        | Msg::Filling(_)
        | Msg::Skipped(_)
        | Msg::Flushed(_)
        | Msg::Error(_)
        | Msg::Summary(_) => serde_json::to_string(&ServerMessage {
            msg: Some(msg.clone()),
        })
        .ok(),
        _ => None,
    }
}

/// `label score` pairs after the best.
fn runners_up(top: &[LabelScore]) -> String {
    top.iter()
        .skip(1)
        .map(|l| format!("{} {:.3}", l.label, l.score))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A voice activity model's answer in words: where speech started or ended at this chunk,
/// else whether the stream is in speech.
fn voice_note(voice: &VoiceActivity) -> String {
    match (voice.speech_start, voice.speech_end) {
        (Some(at), _) => format!("speech starts (sample {at})"),
        (_, Some(at)) => format!("speech ended (sample {at})"),
        _ if voice.in_speech => "in speech".to_string(),
        _ => String::new(),
    }
}

/// A table row for the messages that concern frames.
fn table_row(msg: &Msg, latency: Option<Duration>) -> Option<String> {
    let latency = latency.map_or(String::new(), |d| {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    });
    let row = |frame: String, label: &str, score: String, next: String| {
        format!("{frame:>7}  {label:<18} {score:>6}  {next:<44} {latency:>9}")
    };
    match msg {
        Msg::Prediction(p) => {
            let best = p.top_k.first()?;
            let next = match &p.voice {
                Some(voice) => voice_note(voice),
                None => runners_up(&p.top_k),
            };
            Some(row(
                p.seq.to_string(),
                &best.label,
                format!("{:.3}", best.score),
                next,
            ))
        }
        Msg::Filling(f) => Some(row(
            f.seq.to_string(),
            "(filling)",
            String::new(),
            String::new(),
        )),
        Msg::Skipped(s) => Some(row(
            s.seq.to_string(),
            "(skipped)",
            String::new(),
            String::new(),
        )),
        Msg::Flushed(f) => Some(
            f.predictions
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let (label, score) = p.top_k.first().map_or(("", String::new()), |b| {
                        (b.label.as_str(), format!("{:.3}", b.score))
                    });
                    format!(
                        "{:>7}  {label:<18} {score:>6}  {}",
                        format!("flush {i}"),
                        runners_up(&p.top_k)
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        _ => None,
    }
}

/// A one-line progress bar on stderr.
#[derive(Debug)]
struct Progress {
    total: Option<usize>,
    done: usize,
    started: Instant,
    last_drawn: Option<Instant>,
    enabled: bool,
}

impl Progress {
    fn new(total: Option<usize>, enabled: bool) -> Progress {
        Progress {
            total,
            done: 0,
            started: Instant::now(),
            last_drawn: None,
            enabled,
        }
    }

    /// Redraws, at most ten times a second unless `now`.
    fn draw(&mut self, now: bool) {
        if !self.enabled {
            return;
        }
        if !now
            && self
                .last_drawn
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.last_drawn = Some(Instant::now());
        let line = render(self.done, self.total, self.started.elapsed());
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}\x1b[K");
        let _ = err.flush();
    }

    fn clear(&mut self) {
        if self.enabled && self.last_drawn.is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}

/// The progress line: a bar when the total is known, the rate, and the time left.
fn render(done: usize, total: Option<usize>, elapsed: Duration) -> String {
    const WIDTH: usize = 30;
    let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
    match total {
        Some(total) if total > 0 => {
            let filled = (done.min(total) * WIDTH) / total;
            let left = total.saturating_sub(done) as f64 / rate.max(1e-9);
            let eta = if done == 0 {
                "–".to_string()
            } else {
                format!("{:.0} s", left.ceil())
            };
            format!(
                "[{}{}] {done}/{total} frames  {rate:.1} frames/s  {eta} left",
                "#".repeat(filled),
                "-".repeat(WIDTH - filled)
            )
        }
        _ => format!("{done} frames  {rate:.1} frames/s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use costream_proto::v1::{Filling, Prediction};

    #[test]
    fn progress_shows_the_bar_the_rate_and_the_time_left() {
        assert_eq!(
            render(50, Some(200), Duration::from_secs(2)),
            "[#######-----------------------] 50/200 frames  25.0 frames/s  6 s left"
        );
        assert_eq!(
            render(7, None, Duration::from_secs(2)),
            "7 frames  3.5 frames/s"
        );
        assert!(render(0, Some(10), Duration::from_secs(1)).ends_with("– left"));
    }

    #[test]
    fn table_rows_and_json_lines() {
        let label = |index, label: &str, score| LabelScore {
            index,
            label: label.into(),
            score,
        };
        let prediction = Msg::Prediction(Prediction {
            seq: 12,
            top_k: vec![label(1, "moving right", 0.9), label(7, "still", 0.05)],
            ..Prediction::default()
        });
        let row = table_row(&prediction, Some(Duration::from_micros(2500))).unwrap();
        assert!(
            row.starts_with("     12  moving right        0.900  still 0.050"),
            "{row}"
        );
        assert!(row.ends_with("2.5 ms"), "{row}");
        let json = json_line(&prediction).unwrap();
        assert!(json.starts_with(r#"{"prediction":{"seq":"12""#), "{json}");
        let filling = Msg::Filling(Filling { seq: 0, pts: 0 });
        assert!(table_row(&filling, None).unwrap().contains("(filling)"));
        assert_eq!(table_row(&Msg::Active(Default::default()), None), None);
    }
}
