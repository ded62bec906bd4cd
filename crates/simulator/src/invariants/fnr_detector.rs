//! Finding a fødselsnummer in text and in protobuf records, without ever reporting it.
//!
//! Two kinds of finding:
//! - **listed**: one of the simulation's employees' numbers, anywhere — inside a longer run of
//!   digits too, since a leak glued to other digits is still a leak;
//! - **look-alike**: any other eleven digits standing alone (not part of a longer number, a
//!   word, a hex digest or a UUID; not the fraction of a decimal number) that pass the
//!   fødselsnummer checks (two mod-11 check digits, a plausible day and month; D-numbers and
//!   synthetic numbers included), also written the way people do, `DDMMYY NNNNN`. A number
//!   nobody listed may still be a person's; it is suspicious. Requiring it to stand alone is
//!   what keeps keyed pseudonyms (64 hex digits, which hold runs of eleven decimal digits
//!   often enough over a national year) from being taken for one.
//!
//! Only counts come out; the digits never leave this module.

use std::collections::HashSet;

use ekb_domain::{Fodselsnummer, SyntheticPolicy};

use super::protobuf_strings;

/// What a scan found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Findings {
    /// Occurrences of a listed employee's number.
    pub listed: usize,
    /// Other eleven-digit numbers that pass the fødselsnummer checks.
    pub look_alike: usize,
}

impl Findings {
    /// Whether anything was found.
    pub fn any(&self) -> bool {
        self.listed + self.look_alike > 0
    }

    /// Adds `other`'s counts.
    pub fn add(&mut self, other: Findings) {
        self.listed += other.listed;
        self.look_alike += other.look_alike;
    }
}

/// Finds the listed numbers and look-alikes.
#[derive(Debug, Clone, Default)]
pub struct FnrDetector {
    listed: HashSet<[u8; 11]>,
}

impl FnrDetector {
    /// A detector for `employees`' numbers (entries that are not eleven digits are ignored).
    pub fn new(employees: &[String]) -> Self {
        FnrDetector {
            listed: employees
                .iter()
                .filter_map(|number| <[u8; 11]>::try_from(number.as_bytes()).ok())
                .filter(|digits| digits.iter().all(u8::is_ascii_digit))
                .collect(),
        }
    }

    /// Scans text (a log line, a column's text, a record's key).
    pub fn scan_text(&self, text: &[u8]) -> Findings {
        let mut findings = Findings {
            listed: self.listed_in(text),
            look_alike: 0,
        };
        for candidate in standalone_candidates(text) {
            if !self.listed.contains(&candidate) && passes_checks(&candidate) {
                findings.look_alike += 1;
            }
        }
        findings
    }

    /// Scans a protobuf record (an event envelope, an outbox payload): listed numbers anywhere
    /// in its bytes, look-alikes in each of its text fields. What is not wire format is
    /// scanned as text.
    pub fn scan_protobuf(&self, bytes: &[u8]) -> Findings {
        let Some(fields) = protobuf_strings::text_fields(bytes) else {
            return self.scan_text(bytes);
        };
        let mut findings = Findings {
            listed: self.listed_in(bytes),
            look_alike: 0,
        };
        for field in fields {
            findings.look_alike += self.scan_text(field).look_alike;
        }
        findings
    }

    /// Occurrences of listed numbers in every run of eleven or more digits (and in the
    /// `DDMMYY NNNNN` form).
    fn listed_in(&self, text: &[u8]) -> usize {
        if self.listed.is_empty() {
            return 0;
        }
        let mut found = 0;
        for (start, end) in digit_runs(text) {
            let run = &text[start..end];
            if run.len() >= 11 {
                found += run
                    .windows(11)
                    .filter_map(|window| <[u8; 11]>::try_from(window).ok())
                    .filter(|window| self.listed.contains(window))
                    .count();
            }
        }
        found
            + spaced_candidates(text)
                .filter(|(candidate, _, _)| self.listed.contains(candidate))
                .count()
    }
}

/// `text` with every run of eleven or more digits, and every `DDMMYY NNNNN`, replaced by
/// `<digits>`, for putting text someone else wrote (a dead letter's reason) in a violation.
pub fn redact(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut hidden: Vec<(usize, usize)> = digit_runs(bytes)
        .into_iter()
        .filter(|(start, end)| end - start >= 11)
        .collect();
    hidden.extend(spaced_candidates(bytes).map(|(_, start, end)| (start, end)));
    hidden.sort_unstable();
    let mut redacted = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in hidden {
        if start < at {
            continue;
        }
        redacted.push_str(&text[at..start]);
        redacted.push_str("<digits>");
        at = end;
    }
    redacted.push_str(&text[at..]);
    redacted
}

/// The maximal runs of ASCII digits in `text`, as (start, end).
fn digit_runs(text: &[u8]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start = None;
    for (index, byte) in text.iter().enumerate() {
        match (byte.is_ascii_digit(), start) {
            (true, None) => start = Some(index),
            (false, Some(from)) => {
                runs.push((from, index));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(from) = start {
        runs.push((from, text.len()));
    }
    runs
}

/// `DDMMYY NNNNN`: a run of six digits, one space, a run of five; with where it starts and
/// ends.
fn spaced_candidates(text: &[u8]) -> impl Iterator<Item = ([u8; 11], usize, usize)> + '_ {
    let runs = digit_runs(text);
    let pairs: Vec<_> = runs
        .windows(2)
        .filter_map(|pair| {
            let ((first_start, first_end), (second_start, second_end)) = (pair[0], pair[1]);
            let joined = first_end - first_start == 6
                && second_end - second_start == 5
                && second_start == first_end + 1
                && text[first_end] == b' ';
            joined.then(|| {
                let mut candidate = [0u8; 11];
                candidate[..6].copy_from_slice(&text[first_start..first_end]);
                candidate[6..].copy_from_slice(&text[second_start..second_end]);
                (candidate, first_start, second_end)
            })
        })
        .collect();
    pairs.into_iter()
}

/// Eleven digits standing alone (or `DDMMYY NNNNN`): bounded by neither a letter, nor a
/// digit, nor a decimal point or comma between digits.
fn standalone_candidates(text: &[u8]) -> Vec<[u8; 11]> {
    let mut candidates: Vec<[u8; 11]> = digit_runs(text)
        .into_iter()
        .filter(|(start, end)| end - start == 11 && stands_alone(text, *start, *end))
        .filter_map(|(start, end)| <[u8; 11]>::try_from(&text[start..end]).ok())
        .collect();
    candidates.extend(
        spaced_candidates(text)
            .filter(|(_, start, end)| stands_alone(text, *start, *end))
            .map(|(candidate, _, _)| candidate),
    );
    candidates
}

fn stands_alone(text: &[u8], start: usize, end: usize) -> bool {
    let before = start.checked_sub(1).map(|index| text[index]);
    let after = text.get(end).copied();
    let digit_beyond = |index: Option<usize>| {
        index
            .and_then(|index| text.get(index))
            .is_some_and(u8::is_ascii_digit)
    };
    let word =
        |byte: Option<u8>| byte.is_some_and(|byte| byte.is_ascii_alphanumeric() || byte == b'_');
    let decimal = |byte: Option<u8>| matches!(byte, Some(b'.' | b','));
    !(word(before)
        || word(after)
        || (decimal(before) && digit_beyond(start.checked_sub(2)))
        || (decimal(after) && digit_beyond(Some(end + 1))))
}

fn passes_checks(candidate: &[u8; 11]) -> bool {
    std::str::from_utf8(candidate)
        .is_ok_and(|digits| Fodselsnummer::parse(digits, SyntheticPolicy::Accept).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic number (Tenor: month + 80) with valid check digits, made here so no real
    /// person's number is in the source; and a second one.
    fn synthetic(day: u32) -> String {
        for serial in 0..1000u32 {
            let first9 = format!("{day:02}8190{serial:03}");
            for check in 0..100u32 {
                let candidate = format!("{first9}{check:02}");
                if Fodselsnummer::parse(&candidate, SyntheticPolicy::Accept).is_ok() {
                    return candidate;
                }
            }
        }
        panic!("no synthetic number with valid check digits");
    }

    #[test]
    fn a_listed_number_is_found_anywhere_and_counted_once_as_listed() {
        let listed = synthetic(1);
        let detector = FnrDetector::new(std::slice::from_ref(&listed));
        let line = format!(r#"{{"msg":"placing order","employee":"{listed}"}}"#);
        assert_eq!(
            detector.scan_text(line.as_bytes()),
            Findings {
                listed: 1,
                look_alike: 0
            }
        );
        let glued = format!("ref9{listed}7");
        assert_eq!(
            detector.scan_text(glued.as_bytes()).listed,
            1,
            "inside a longer number"
        );
        let spaced = format!("fnr {} {}", &listed[..6], &listed[6..]);
        assert_eq!(
            detector.scan_text(spaced.as_bytes()).listed,
            1,
            "DDMMYY NNNNN"
        );
    }

    #[test]
    fn an_unlisted_number_that_passes_the_checks_is_a_look_alike_only_when_it_stands_alone() {
        let other = synthetic(2);
        let detector = FnrDetector::new(&[synthetic(1)]);
        assert_eq!(
            detector.scan_text(format!("note: {other}.").as_bytes()),
            Findings {
                listed: 0,
                look_alike: 1
            }
        );
        for embedded in [
            format!("ab{other}cd"),                 // inside a hex digest
            format!("9{other}"),                    // part of a longer number
            format!("0.{other}"),                   // a decimal fraction
            format!("e3b0c442-98fc-1c14-a{other}"), // inside a UUID-like token
        ] {
            assert_eq!(
                detector.scan_text(embedded.as_bytes()),
                Findings::default(),
                "{embedded}"
            );
        }
        let mut invalid = other.clone().into_bytes();
        invalid[10] = if invalid[10] == b'9' {
            b'0'
        } else {
            invalid[10] + 1
        };
        assert_eq!(
            detector.scan_text(&invalid),
            Findings::default(),
            "wrong check digit"
        );
    }

    #[test]
    fn a_number_in_a_protobuf_string_field_is_found_though_a_digit_tag_follows_it() {
        let other = synthetic(3);
        let listed = synthetic(4);
        let detector = FnrDetector::new(std::slice::from_ref(&listed));
        let mut record = vec![0x32, 11];
        record.extend_from_slice(other.as_bytes());
        record.extend([0x30, 0x05]); // field 6 varint: tag byte '0' right after the digits
        record.push(0x3a);
        record.push(11);
        record.extend_from_slice(listed.as_bytes());
        assert_eq!(
            detector.scan_protobuf(&record),
            Findings {
                listed: 1,
                look_alike: 1
            }
        );
        assert_eq!(
            detector.scan_text(&record).look_alike,
            0,
            "as raw text the tag digit hides it"
        );
    }

    #[test]
    fn redacting_hides_long_numbers_and_keeps_the_rest() {
        let number = synthetic(5);
        let text = format!(
            "payload for {number} and {} {} refused; orgnr 974760673",
            &number[..6],
            &number[6..]
        );
        assert_eq!(
            redact(&text),
            "payload for <digits> and <digits> refused; orgnr 974760673"
        );
    }

    #[test]
    fn pseudonyms_and_ids_are_not_taken_for_numbers() {
        let detector = FnrDetector::new(&[synthetic(1)]);
        let pseudonym = "0123456789a01234567890b0123456789012c01234567890d0123456789012ef";
        assert_eq!(
            detector.scan_text(pseudonym.as_bytes()),
            Findings::default()
        );
        assert_eq!(
            detector.scan_text(b"orgnr 974760673, 2027-01-04T09:00:00Z"),
            Findings::default()
        );
    }
}
