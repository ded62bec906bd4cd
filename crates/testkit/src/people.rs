//! Test people: fødselsnumre with valid check digits, made up for tests. Built from the
//! published algorithm (mod-11, weights 3 7 6 1 8 9 4 5 2 and 5 4 3 2 7 6 5 4 3 2), so a test
//! can make as many distinct numbers as it needs, real-looking or synthetic (month + 80).

/// A fødselsnummer born on `ddmmyy` (month as given: add 80 for a synthetic test number) with
/// individual number `individual`, or the next individual number whose check digits exist.
pub fn fodselsnummer(ddmmyy: &str, individual: u32) -> String {
    let mut individual = individual % 1000;
    loop {
        let base = format!("{ddmmyy}{individual:03}");
        let digits: Vec<u32> = base.chars().filter_map(|c| c.to_digit(10)).collect();
        if let Some(first) = check_digit(&digits, &[3, 7, 6, 1, 8, 9, 4, 5, 2]) {
            let mut with_first = digits.clone();
            with_first.push(first);
            if let Some(second) = check_digit(&with_first, &[5, 4, 3, 2, 7, 6, 5, 4, 3, 2]) {
                return format!("{base}{first}{second}");
            }
        }
        individual = (individual + 1) % 1000;
    }
}

/// A synthetic test number (month + 80, as NAV's test data uses) born on `ddmmyy` with
/// individual number `individual` or the next one that has check digits.
pub fn synthetic_fodselsnummer(ddmmyy: &str, individual: u32) -> String {
    let month: u32 = ddmmyy[2..4].parse().unwrap_or(1);
    fodselsnummer(
        &format!("{}{:02}{}", &ddmmyy[..2], month + 80, &ddmmyy[4..]),
        individual,
    )
}

fn check_digit(digits: &[u32], weights: &[u32]) -> Option<u32> {
    let sum: u32 = digits.iter().zip(weights).map(|(d, w)| d * w).sum();
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        digit => Some(digit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_eleven_digits_and_differ_by_individual_number() {
        let first = fodselsnummer("150385", 493);
        let second = fodselsnummer("150385", 600);
        assert_eq!(first.len(), 11);
        assert_ne!(first, second);
        assert!(first.starts_with("150385"));
        let synthetic = synthetic_fodselsnummer("150385", 493);
        assert!(synthetic.starts_with("1583"), "{synthetic}");
    }
}
