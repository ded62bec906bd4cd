//! Generic request validators, written once for every service. A request is parsed with
//! `TryFrom<wire request>` into a validated command (nested messages through [`FromWire`]); each
//! field is checked through one of these
//! methods on [`Violations`], which records a field violation (dotted field path and the rule)
//! instead of stopping, so the caller learns about every broken rule at once:
//!
//! ```ignore
//! let mut check = Violations::new();
//! let case_id = check.uuid("case_id", &request.case_id);
//! let note = check.text("note", &request.note, 500);
//! check.finish_with(|| Some(Command { case_id: case_id?, note: note? }))
//! ```

use std::fmt;

use ekb_domain::{
    DateRange, Fodselsnummer, Money, OrganisationNumber, SyntheticPolicy, contains_fodselsnummer,
    parse_iso_date, validate_name,
};
use sha2::{Digest as _, Sha256};
use time::Date;
use uuid::Uuid;

use crate::{ApiError, Violations};

/// A part of a request (a nested message) that checks itself into a domain value, adding a
/// violation per broken rule under `field` (e.g. `facts.case_date`).
pub trait FromWire<W>: Sized {
    /// The domain value of `wire`, found at `field`; `None` if a rule was broken.
    fn from_wire(field: &str, wire: &W, check: &mut Violations) -> Option<Self>;
}

impl Violations {
    /// A required nested message, checked by its [`FromWire`].
    pub fn part<T: FromWire<W>, W>(&mut self, field: &str, wire: Option<&W>) -> Option<T> {
        let wire = self.required(field, wire)?;
        T::from_wire(field, wire, self)
    }

    /// `Ok` with what `build` makes of the checked values if no rule was broken, else
    /// INVALID_ARGUMENT with every violation. `build` returns `None` only if a check and the
    /// command disagree (a bug, reported as INTERNAL, never a panic).
    pub fn finish_with<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, ApiError> {
        self.finish()?;
        build().ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!(
                "a request passed validation but a checked value is missing"
            ))
        })
    }

    /// A required message field.
    pub fn required<'a, T>(&mut self, field: &str, value: Option<&'a T>) -> Option<&'a T> {
        if value.is_none() {
            self.add(field, "is required");
        }
        value
    }

    /// A required UUID.
    pub fn uuid(&mut self, field: &str, text: &str) -> Option<Uuid> {
        self.check(field, Uuid::parse_str(text).map_err(|_| "must be a UUID"))
    }

    /// A required enum value: known in this contract version and not UNSPECIFIED (zero).
    pub fn enumeration<E: TryFrom<i32>>(&mut self, field: &str, value: i32) -> Option<E> {
        if value == 0 {
            self.add(field, "must be set (UNSPECIFIED is not allowed)");
            return None;
        }
        let known = E::try_from(value).ok();
        if known.is_none() {
            self.add(field, format!("unknown enum value {value}"));
        }
        known
    }

    /// A required calendar date, `YYYY-MM-DD`.
    pub fn date(&mut self, field: &str, text: &str) -> Option<Date> {
        self.check(field, parse_iso_date(text))
    }

    /// A required inclusive date range (`from_date`, `to_date`), `from` not after `to`.
    pub fn date_range(
        &mut self,
        field: &str,
        range: Option<&ekb_proto::v1::DateRange>,
    ) -> Option<DateRange> {
        let range = self.required(field, range)?;
        let from = self.date(&format!("{field}.from_date"), &range.from_date);
        let to = self.date(&format!("{field}.to_date"), &range.to_date);
        self.check(field, DateRange::new(from?, to?))
    }

    /// Required free text: trimmed, not blank, no control characters, at most `max_chars`, and
    /// no pasted fødselsnummer (an 11-digit run passing its checksums: free text is stored and
    /// shown in clear, a national id must not be).
    pub fn text(&mut self, field: &str, text: &str, max_chars: usize) -> Option<String> {
        let text = self.check(field, validate_name(text, max_chars).map(str::to_owned))?;
        if contains_fodselsnummer(&text) {
            self.add(
                field,
                "must not contain a fødselsnummer or D-number (give it only in its own field)",
            );
            return None;
        }
        Some(text)
    }

    /// A required contact person (`field`), the same rules wherever the contract carries one
    /// (an application, an order): a name of at most 200 characters, a phone number of 8–20
    /// characters of digits and spaces with an optional leading `+`, and an e-mail address of
    /// 3–254 characters with one `@` between a non-empty local part and domain, no spaces.
    pub fn contact_person(
        &mut self,
        field: &str,
        contact: Option<&ekb_proto::v1::ContactPerson>,
    ) -> Option<ekb_proto::v1::ContactPerson> {
        let contact = self.required(field, contact)?;
        let name = self.text(&format!("{field}.name"), &contact.name, 200);
        let phone = self.phone_number(&format!("{field}.phone_number"), &contact.phone_number);
        let email = self.email(&format!("{field}.email"), &contact.email);
        Some(ekb_proto::v1::ContactPerson {
            name: name?,
            phone_number: phone?,
            email: email?,
        })
    }

    /// A phone number: 8–20 characters of digits and spaces, with an optional leading `+`.
    pub fn phone_number(&mut self, field: &str, text: &str) -> Option<String> {
        let shaped = (8..=20).contains(&text.chars().count())
            && text.chars().enumerate().all(|(index, character)| {
                character.is_ascii_digit() || character == ' ' || (index == 0 && character == '+')
            })
            && text.chars().any(|character| character.is_ascii_digit());
        if !shaped {
            self.add(
                field,
                "must be 8–20 characters of digits and spaces, with an optional leading +",
            );
            return None;
        }
        Some(text.to_owned())
    }

    /// An e-mail address: 3–254 characters, one `@` between a non-empty local part and domain,
    /// no spaces or control characters (surrounding spaces are trimmed).
    pub fn email(&mut self, field: &str, text: &str) -> Option<String> {
        let text = text.trim();
        let shaped = (3..=254).contains(&text.chars().count())
            && text.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && !domain.is_empty() && !domain.contains('@')
            })
            && !text
                .chars()
                .any(|character| character.is_whitespace() || character.is_control());
        if !shaped {
            self.add(field, "must be an e-mail address of 3–254 characters");
            return None;
        }
        Some(text.to_owned())
    }

    /// A required fødselsnummer or D-number: 11 digits with valid check digits; synthetic test
    /// numbers only under [`SyntheticPolicy::Accept`]. The rule never repeats the input.
    pub fn fodselsnummer(
        &mut self,
        field: &str,
        text: &str,
        policy: SyntheticPolicy,
    ) -> Option<Fodselsnummer> {
        self.check(field, Fodselsnummer::parse(text, policy))
    }

    /// A required organisation number (9 digits, valid mod-11 check digit).
    pub fn organisation_number(&mut self, field: &str, text: &str) -> Option<OrganisationNumber> {
        self.check(field, OrganisationNumber::parse(text))
    }

    /// `page_size` (1 to [`Page::MAX_SIZE`], 0 meaning [`Page::DEFAULT_SIZE`]) and `page_token`
    /// (empty, or the `next_page_token` of an earlier page of the same listing) of a listing
    /// whose other fields are `filters`. The token is bound to the filters: a token reused with
    /// other filters is refused, so a page can never mix two listings.
    pub fn page(&mut self, size: i32, token: &str, filters: &impl fmt::Debug) -> Option<Page> {
        let size = match i64::from(size) {
            0 => Some(Page::DEFAULT_SIZE),
            size if (1..=Page::MAX_SIZE).contains(&size) => Some(size),
            _ => {
                self.add(
                    "page_size",
                    format!(
                        "must be from 1 to {} (0 means {})",
                        Page::MAX_SIZE,
                        Page::DEFAULT_SIZE
                    ),
                );
                None
            }
        };
        let binding = Page::binding_of(filters);
        let after = if token.is_empty() {
            Some(None)
        } else {
            let parsed = token
                .strip_prefix(PAGE_TOKEN_PREFIX)
                .and_then(|rest| rest.split_once(PAGE_TOKEN_BINDING))
                .filter(|(_, bound)| *bound == binding)
                .and_then(|(number, _)| number.parse::<i64>().ok())
                .filter(|sequence| *sequence > 0);
            if parsed.is_none() {
                self.add(
                    "page_token",
                    "must be a next_page_token from an earlier response with the same filters",
                );
            }
            parsed.map(Some)
        };
        Some(Page {
            size: size?,
            after: after?,
            binding,
        })
    }

    /// Optional free text: empty is `Some("")`; otherwise as [`Self::text`].
    pub fn optional_text(&mut self, field: &str, text: &str, max_chars: usize) -> Option<String> {
        if text.trim().is_empty() {
            return Some(String::new());
        }
        self.text(field, text, max_chars)
    }

    /// A required amount about one case in øre: greater than zero and at most
    /// [`Money::MAX_CASE_AMOUNT`].
    pub fn positive_money(&mut self, field: &str, ore: i64) -> Option<Money> {
        self.check(field, Money::from_ore(ore).require_case_amount())
    }

    /// A required gross amount where people type numbers (`Amount`, ADR 0021 decision 9): its
    /// `ore` greater than zero and its `vat` VAT_TREATMENT_INCLUDED, since § 5 covers costs
    /// including VAT. Both rules are checked, each under its own field.
    pub fn gross_amount(
        &mut self,
        field: &str,
        amount: Option<&ekb_proto::v1::Amount>,
    ) -> Option<Money> {
        let amount = self.required(field, amount)?;
        let ore = self.positive_money(&format!("{field}.ore"), amount.ore);
        if amount.vat != ekb_proto::v1::VatTreatment::Included as i32 {
            self.add(
                &format!("{field}.vat"),
                "must be VAT_TREATMENT_INCLUDED (§ 5 covers costs including VAT)",
            );
            return None;
        }
        ore
    }

    /// A required whole number, greater than zero.
    pub fn positive<N: Copy + PartialOrd + Default>(&mut self, field: &str, value: N) -> Option<N> {
        if value <= N::default() {
            self.add(field, "must be greater than zero");
            return None;
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(violations: Violations) -> Vec<String> {
        match violations.finish() {
            Err(ApiError::InvalidArgument(found)) => {
                found.into_iter().map(|violation| violation.field).collect()
            }
            other => panic!("expected violations, got {other:?}"),
        }
    }

    #[test]
    fn every_broken_rule_is_collected_with_its_field() {
        let mut check = Violations::new();
        assert_eq!(check.uuid("id", "nope"), None);
        assert_eq!(
            check.enumeration::<ekb_proto::v1::CompetenceArea>("area", 0),
            None
        );
        assert_eq!(
            check.enumeration::<ekb_proto::v1::CompetenceArea>("area2", 99),
            None
        );
        assert_eq!(check.date("on", "2024-02-30"), None);
        assert_eq!(check.text("note", "   ", 10), None);
        assert_eq!(check.positive_money("amount", -1), None);
        assert_eq!(check.positive("count", 0), None);
        assert_eq!(check.date_range("period", None), None);
        assert_eq!(
            fields(check),
            [
                "id", "area", "area2", "on", "note", "amount", "count", "period"
            ]
        );
    }

    #[test]
    fn a_reversed_range_names_the_range() {
        let mut check = Violations::new();
        let range = ekb_proto::v1::DateRange {
            from_date: "2024-05-02".to_owned(),
            to_date: "2024-05-01".to_owned(),
        };
        assert_eq!(check.date_range("validity", Some(&range)), None);
        assert_eq!(fields(check), ["validity"]);
    }

    #[test]
    fn valid_values_build_the_command() {
        let mut check = Violations::new();
        let id = check.uuid("id", "0199aaaa-0000-7000-8000-000000000000");
        let note = check.optional_text("note", "  ", 10);
        let built = check.finish_with(|| Some((id?, note?))).expect("valid");
        assert_eq!(built.1, "");
    }

    #[test]
    fn a_missing_value_after_passing_checks_is_internal() {
        let check = Violations::new();
        let result: Result<(), _> = check.finish_with(|| None);
        assert!(matches!(result, Err(ApiError::Internal(_))));
    }
}

const PAGE_TOKEN_PREFIX: &str = "p";
const PAGE_TOKEN_BINDING: char = '-';

/// A page of a listing ordered by a row sequence number (keyset paging: stable while rows are
/// added), bound to the listing's filters (a token cannot be used to skip or change them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Rows wanted.
    pub size: i64,
    /// Only rows past this sequence number in the listing's order (ascending or descending);
    /// `None` from the start.
    pub after: Option<i64>,
    /// A digest of the listing's filters that this page's tokens carry.
    binding: String,
}

impl Page {
    /// Rows per page when the caller asks for 0 (every listing of every service).
    pub const DEFAULT_SIZE: i64 = 100;
    /// The most rows a caller may ask for in one page.
    pub const MAX_SIZE: i64 = 500;

    /// The first page of `size` rows of the listing with `filters` (for callers inside the
    /// system, such as jobs and tools, that page without a request).
    pub fn first(size: i64, filters: &impl fmt::Debug) -> Self {
        Page {
            size,
            after: None,
            binding: Self::binding_of(filters),
        }
    }

    /// The digest a token of the listing with `filters` carries: eight hex digits of SHA-256,
    /// which tells listings apart and shows nothing of the filters.
    fn binding_of(filters: &impl fmt::Debug) -> String {
        let digest = Sha256::digest(format!("{filters:?}").as_bytes());
        digest[..4]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// Rows to fetch: one more than the page, to learn whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        self.size + 1
    }

    /// Cuts `rows` (fetched with [`Self::fetch_limit`]) to the page, and returns the token of
    /// the next page (empty when there is none); `sequence` gives a row's sequence number.
    pub fn finish<T>(&self, mut rows: Vec<T>, sequence: impl Fn(&T) -> i64) -> (Vec<T>, String) {
        let size = usize::try_from(self.size).unwrap_or(usize::MAX);
        if rows.len() <= size {
            return (rows, String::new());
        }
        rows.truncate(size);
        let token = rows
            .last()
            .map(|last| self.token_after(sequence(last)))
            .unwrap_or_default();
        (rows, token)
    }

    /// The token of the page after the row with `sequence` in this listing.
    pub fn token_after(&self, sequence: i64) -> String {
        format!(
            "{PAGE_TOKEN_PREFIX}{sequence}{PAGE_TOKEN_BINDING}{}",
            self.binding
        )
    }
}

#[cfg(test)]
mod paging_and_personal_data_tests {
    use super::*;

    #[test]
    fn a_page_is_parsed_bounded_and_continued() {
        let filters = ("case", 7);
        let mut check = Violations::new();
        let page = check.page(0, "", &filters).expect("default page");
        assert_eq!((page.size, page.after), (Page::DEFAULT_SIZE, None));
        let first = check.page(2, "", &filters).expect("first page");
        let (rows, next) = first.finish(vec![8, 9, 10], |row| *row);
        assert_eq!(rows, vec![8, 9]);
        let second = check.page(2, &next, &filters).expect("second page");
        assert_eq!(second.after, Some(9));
        let (rows, next) = second.finish(vec![10], |row| *row);
        assert_eq!((rows, next), (vec![10], String::new()));
        assert!(check.is_empty());
        assert!(check.page(501, "x", &filters).is_none());
        assert!(!check.is_empty());
    }

    #[test]
    fn a_page_token_is_refused_with_other_filters_or_forged() {
        let token = Page::first(2, &("case", 7)).token_after(9);
        for (filters, forged) in [(("case", 8), token.clone()), (("case", 7), "p9".to_owned())] {
            let mut check = Violations::new();
            assert!(check.page(2, &forged, &filters).is_none());
            let error = check.finish_with(|| Some(())).expect_err("refused");
            assert!(error.to_string().contains("page_token"), "{error}");
        }
    }

    #[test]
    fn a_contact_person_has_one_set_of_rules() {
        use ekb_proto::v1::ContactPerson;
        let good = ContactPerson {
            name: "Kari Nordmann".to_owned(),
            phone_number: "+47 99 88 77 66".to_owned(),
            email: " kari@example.no ".to_owned(),
        };
        let mut check = Violations::new();
        let contact = check
            .contact_person("contact_person", Some(&good))
            .expect("valid");
        assert_eq!(contact.email, "kari@example.no");
        assert!(check.is_empty());
        for (phone, email, bad_field) in [
            (
                "4799+887766",
                "kari@example.no",
                "contact_person.phone_number",
            ),
            ("1234567", "kari@example.no", "contact_person.phone_number"),
            ("+4799887766", "kari@@example.no", "contact_person.email"),
            ("+4799887766", "@example.no", "contact_person.email"),
            ("+4799887766", "kari example.no", "contact_person.email"),
        ] {
            let mut check = Violations::new();
            let contact = ContactPerson {
                phone_number: phone.to_owned(),
                email: email.to_owned(),
                ..good.clone()
            };
            assert!(
                check
                    .contact_person("contact_person", Some(&contact))
                    .is_none()
            );
            let error = check.finish_with(|| Some(())).expect_err("refused");
            assert!(
                error.to_string().contains(bad_field),
                "{phone} {email}: {error}"
            );
        }
        let mut check = Violations::new();
        assert!(check.contact_person("contact_person", None).is_none());
        assert!(!check.is_empty());
    }

    #[test]
    fn a_gross_amount_must_be_positive_and_include_vat() {
        use ekb_proto::v1::{Amount, VatTreatment};
        let mut check = Violations::new();
        let gross = Amount {
            ore: 150_000,
            vat: VatTreatment::Included as i32,
        };
        assert_eq!(
            check.gross_amount("cost", Some(&gross)),
            Some(Money::from_ore(150_000))
        );
        assert!(check.is_empty());
        let net_and_zero = Amount {
            ore: 0,
            vat: VatTreatment::Unspecified as i32,
        };
        assert_eq!(check.gross_amount("cost", Some(&net_and_zero)), None);
        assert_eq!(check.gross_amount("payout", None), None);
        let status = check.finish().expect_err("refused").into_status(&[]);
        let text = format!("{status:?}");
        for field in ["cost.ore", "cost.vat", "payout"] {
            assert!(text.contains(field), "{field} in {text}");
        }
    }

    #[test]
    fn free_text_refuses_a_pasted_fodselsnummer_without_repeating_it() {
        let number = (0..100_000u32)
            .map(|serial| format!("010180{serial:05}"))
            .find(|candidate| Fodselsnummer::parse(candidate, SyntheticPolicy::Reject).is_ok())
            .expect("a valid number exists");
        let mut check = Violations::new();
        assert!(
            check
                .text("note", &format!("gjelder {number}"), 200)
                .is_none()
        );
        assert_eq!(
            check.text("note", "gjelder ansatt", 200).as_deref(),
            Some("gjelder ansatt")
        );
        let status = check.finish().expect_err("refused").into_status(&[]);
        assert!(!status.message().contains(&number));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }
}
