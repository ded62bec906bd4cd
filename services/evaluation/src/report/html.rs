//! Escaping and number formatting for the report: every text the report writes goes through
//! `escape`, so an agreement reference or a county code can never become markup.

use crate::table::Suppression;

/// `text` with `&`, `<`, `>`, `"` and `'` replaced by entities: safe in element content and in
/// quoted attribute values alike.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `value` rounded to `decimals` places, thousands grouped with a narrow no-break space and a `.`
/// decimal point (the report is in English, like the rest of the documentation).
pub fn number(value: f64, decimals: usize) -> String {
    let text = format!("{:.*}", decimals, value.abs());
    let (whole, fraction) = text
        .split_once('.')
        .map_or((text.as_str(), None), |(w, f)| (w, Some(f)));
    let mut grouped = String::new();
    for (index, digit) in whole.chars().enumerate() {
        if index > 0 && (whole.len() - index) % 3 == 0 {
            grouped.push('\u{202f}');
        }
        grouped.push(digit);
    }
    let sign = if value < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0') {
        "−"
    } else {
        ""
    };
    match fraction {
        Some(fraction) => format!("{sign}{grouped}.{fraction}"),
        None => format!("{sign}{grouped}"),
    }
}

/// The CSS class and `data-suppressed` value of a suppressed cell.
pub fn suppression_name(why: Suppression) -> &'static str {
    match why {
        Suppression::Primary => "primary",
        Suppression::Secondary => "secondary",
    }
}

/// A table cell (`<td>`) showing a suppressed value as suppressed, never as a number: the text
/// says so and the element carries `class="suppressed"` and `data-suppressed`.
pub fn suppressed_td(why: Suppression, min_cases: u32) -> String {
    let (text, title) = match why {
        Suppression::Primary => (
            format!("⋯ suppressed (&lt;{min_cases})"),
            format!("computed from fewer than {min_cases} cases"),
        ),
        Suppression::Secondary => (
            "⋯ suppressed".to_owned(),
            "hidden so that a total cannot reveal a suppressed cell".to_owned(),
        ),
    };
    format!(
        "<td class=\"suppressed\" data-suppressed=\"{}\" title=\"{}\">{text}</td>",
        suppression_name(why),
        escape(&title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<a href='x'>\"&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&quot;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(escape("Innlandet 34"), "Innlandet 34");
    }

    #[test]
    fn numbers_are_grouped_and_rounded() {
        assert_eq!(number(1_234_567.891, 1), "1\u{202f}234\u{202f}567.9");
        assert_eq!(number(999.0, 0), "999");
        assert_eq!(number(-1500.0, 0), "−1\u{202f}500");
        assert_eq!(number(-0.001, 1), "0.0", "no minus on a rounded zero");
        assert_eq!(number(0.25, 2), "0.25");
    }

    #[test]
    fn a_suppressed_cell_says_so() {
        let td = suppressed_td(Suppression::Primary, 5);
        assert!(td.contains("class=\"suppressed\"") && td.contains("data-suppressed=\"primary\""));
        assert!(td.contains("suppressed (&lt;5)"));
        assert!(suppressed_td(Suppression::Secondary, 5).contains("data-suppressed=\"secondary\""));
    }
}
