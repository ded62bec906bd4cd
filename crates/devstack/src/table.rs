//! The plain-text tables `ekb-dev` prints (the sample cases, budget's usage): a header line and
//! one line per row, columns two spaces apart, each as wide as its widest cell, indented by two
//! spaces like the rest of the demo's output.

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text: padded on the right.
    Left,
    /// Numbers and amounts: padded on the left, so their last digits line up.
    Right,
}

/// `rows` under `header`, each column aligned as `align` says. Widths count characters, not
/// bytes (`Gjøvik`, `…`); trailing spaces are trimmed.
pub fn aligned<const N: usize>(
    header: [&str; N],
    align: [Align; N],
    rows: &[[String; N]],
) -> String {
    let mut widths = header.map(|title| title.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; N]| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths.iter().zip(align))
            .map(|(cell, (width, align))| {
                let pad = " ".repeat(width.saturating_sub(cell.chars().count()));
                match align {
                    Align::Left => format!("{cell}{pad}"),
                    Align::Right => format!("{pad}{cell}"),
                }
            })
            .collect();
        format!("  {}", padded.join("  ").trim_end())
    };
    let mut out = vec![line(header)];
    for row in rows {
        out.push(line(row.each_ref().map(String::as_str)));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_left_or_right_by_characters() {
        let text = aligned(
            ["PLACE", "AMOUNT"],
            [Align::Left, Align::Right],
            &[
                ["Gjøvik".to_owned(), "5,00 kr".to_owned()],
                ["Hamar".to_owned(), "1 000,00 kr".to_owned()],
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "  PLACE        AMOUNT",
                "  Gjøvik      5,00 kr",
                "  Hamar   1 000,00 kr",
            ]
        );
    }
}
