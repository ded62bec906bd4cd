//! Inline SVG charts: a line chart and a grouped bar chart over the period's months, drawn as
//! plain shapes so the report needs no script and no external asset. A suppressed point is a gap
//! with a hollow grey marker on the axis (`class="suppressed"`), never a zero; a figure with no
//! value (a median of no cases) is simply not drawn. Each chart's `<figure>` carries
//! `data-points` (values drawn) and `data-suppressed-points` so a test can see it has data.

use std::fmt::Write as _;

use super::html::{escape, suppression_name};
use crate::table::Suppression;

/// One month's point of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Point {
    /// A published value.
    Value(f64),
    /// A suppressed value.
    Suppressed(Suppression),
    /// No cell (the figure has no basis that month).
    Missing,
}

/// One line, or one bar of every group.
#[derive(Debug, Clone)]
pub struct Series {
    /// The legend's text.
    pub name: String,
    /// One point per category, in order.
    pub points: Vec<Point>,
    /// Drawn dashed (a comparison, e.g. the year before).
    pub dashed: bool,
}

/// How the chart draws its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A line per series.
    Line,
    /// A bar per series in each category's group.
    Bars,
}

/// A chart over `categories` (the months).
#[derive(Debug, Clone)]
pub struct Chart {
    /// Its `data-chart` id (snake_case).
    pub id: &'static str,
    /// The heading.
    pub title: String,
    /// What the y axis measures.
    pub unit: String,
    /// The x axis' labels.
    pub categories: Vec<String>,
    /// The series.
    pub series: Vec<Series>,
    /// Line or bars.
    pub kind: Kind,
}

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 40.0;
const COLOURS: [&str; 8] = [
    "#1f5fa8", "#e06a1b", "#2e8b57", "#8e44ad", "#b8860b", "#c0392b", "#16a085", "#555555",
];

/// The colour of the `index`-th series.
pub fn colour(index: usize) -> &'static str {
    COLOURS[index % COLOURS.len()]
}

impl Chart {
    /// The chart as a `<figure>` with its heading, the SVG and a legend.
    pub fn render(&self) -> String {
        let plot_width = WIDTH - LEFT - RIGHT;
        let plot_height = HEIGHT - TOP - BOTTOM;
        let max = self
            .series
            .iter()
            .flat_map(|series| &series.points)
            .filter_map(|point| match point {
                Point::Value(value) => Some(*value),
                _ => None,
            })
            .fold(0.0_f64, f64::max);
        let (step, top) = nice_scale(max);
        let y = |value: f64| TOP + plot_height * (1.0 - value.max(0.0) / top);
        let slots = self.categories.len().max(1) as f64;
        let slot_width = plot_width / slots;
        let centre = |index: usize| LEFT + slot_width * (index as f64 + 0.5);

        let mut svg = String::new();
        let mut drawn = 0_usize;
        let mut suppressed = 0_usize;
        // Grid and y labels.
        let mut tick = 0.0;
        while tick <= top + step / 2.0 {
            let _ = write!(
                svg,
                "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
                 <text class=\"tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                WIDTH - RIGHT,
                LEFT - 6.0,
                y(tick) + 4.0,
                escape(&tick_label(tick, step)),
                y = y(tick),
            );
            tick += step;
        }
        // X labels: at most about 16, evenly spaced.
        let every = self.categories.len().div_ceil(16).max(1);
        for (index, label) in self
            .categories
            .iter()
            .enumerate()
            .filter(|(i, _)| i % every == 0)
        {
            let _ = write!(
                svg,
                "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                centre(index),
                HEIGHT - BOTTOM + 18.0,
                escape(label)
            );
        }
        let _ = write!(
            svg,
            "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\"/>",
            WIDTH - RIGHT,
            TOP + plot_height,
            TOP + plot_height
        );

        let marker = |svg: &mut String, x: f64, why: Suppression, series: &str, category: &str| {
            let _ = write!(
                svg,
                "<rect class=\"suppressed\" data-suppressed=\"{}\" x=\"{:.1}\" y=\"{:.1}\" width=\"8\" \
                 height=\"8\" transform=\"rotate(45 {x:.1} {:.1})\"><title>{} {}: suppressed</title></rect>",
                suppression_name(why),
                x - 4.0,
                TOP + plot_height - 4.0,
                TOP + plot_height,
                escape(series),
                escape(category)
            );
        };

        let bars = self.series.len().max(1) as f64;
        let bar_width = (slot_width * 0.8 / bars).max(1.0);
        for (number, series) in self.series.iter().enumerate() {
            let colour = colour(number);
            let dash = if series.dashed {
                " stroke-dasharray=\"6 4\""
            } else {
                ""
            };
            let mut path = String::new();
            let mut pen_down = false;
            for (index, point) in series.points.iter().enumerate().take(self.categories.len()) {
                let category = &self.categories[index];
                let x = match self.kind {
                    Kind::Line => centre(index),
                    Kind::Bars => {
                        centre(index) - slot_width * 0.4 + bar_width * (number as f64 + 0.5)
                    }
                };
                match *point {
                    Point::Value(value) => {
                        drawn += 1;
                        let title = format!(
                            "{} {}: {}",
                            series.name,
                            category,
                            tick_label(value, step / 100.0)
                        );
                        match self.kind {
                            Kind::Line => {
                                let _ = write!(
                                    path,
                                    "{}{x:.1},{:.1} ",
                                    if pen_down { "L" } else { "M" },
                                    y(value)
                                );
                                pen_down = true;
                                let _ = write!(
                                    svg,
                                    "<circle class=\"mark\" cx=\"{x:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{colour}\">\
                                     <title>{}</title></circle>",
                                    y(value),
                                    escape(&title)
                                );
                            }
                            Kind::Bars => {
                                let _ = write!(
                                    svg,
                                    "<rect class=\"mark\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" \
                                     fill=\"{colour}\"><title>{}</title></rect>",
                                    x - bar_width / 2.0,
                                    y(value),
                                    (bar_width - 1.0).max(1.0),
                                    TOP + plot_height - y(value),
                                    escape(&title)
                                );
                            }
                        }
                    }
                    Point::Suppressed(why) => {
                        suppressed += 1;
                        pen_down = false;
                        marker(&mut svg, x, why, &series.name, category);
                    }
                    Point::Missing => pen_down = false,
                }
            }
            if !path.is_empty() {
                let _ = write!(
                    svg,
                    "<path class=\"line\" d=\"{}\" stroke=\"{colour}\"{dash}/>",
                    path.trim_end()
                );
            }
        }

        let mut legend = String::new();
        for (number, series) in self.series.iter().enumerate() {
            let style = if series.dashed { "dashed" } else { "solid" };
            let _ = write!(
                legend,
                "<li><span class=\"swatch {style}\" style=\"border-color:{}\"></span>{}</li>",
                colour(number),
                escape(&series.name)
            );
        }
        legend.push_str(
            "<li><span class=\"swatch suppressed-key\"></span>suppressed (not zero)</li>",
        );

        format!(
            "<figure class=\"chart\" data-chart=\"{id}\" data-points=\"{drawn}\" data-suppressed-points=\"{suppressed}\">\
             <figcaption>{title} <span class=\"unit\">({unit})</span></figcaption>\
             <svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
             aria-label=\"{title}\">{svg}</svg><ul class=\"legend\">{legend}</ul></figure>",
            id = escape(self.id),
            title = escape(&self.title),
            unit = escape(&self.unit),
        )
    }
}

/// A step of 1, 2 or 5 × 10ⁿ giving about five ticks up to `max`, and the axis' top (a multiple
/// of the step at or above `max`; 1 when there is nothing to show).
fn nice_scale(max: f64) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (0.2, 1.0);
    }
    let raw = max / 5.0;
    let magnitude = 10_f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|factor| factor * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude);
    (step, (max / step).ceil().max(1.0) * step)
}

/// A tick's text with as many decimals as the step needs.
fn tick_label(value: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    super::html::number(value, decimals.min(4))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(kind: Kind, points: Vec<Point>) -> Chart {
        Chart {
            id: "test",
            title: "A <test> chart".to_owned(),
            unit: "cases".to_owned(),
            categories: (1..=points.len()).map(|m| format!("2025-{m:02}")).collect(),
            series: vec![Series {
                name: "County 34".to_owned(),
                points,
                dashed: false,
            }],
            kind,
        }
    }

    #[test]
    fn a_line_breaks_at_a_suppressed_point_and_marks_it() {
        let svg = chart(
            Kind::Line,
            vec![
                Point::Value(2.0),
                Point::Value(3.0),
                Point::Suppressed(Suppression::Primary),
                Point::Value(4.0),
            ],
        )
        .render();
        assert!(svg.contains("data-points=\"3\""));
        assert!(svg.contains("data-suppressed-points=\"1\""));
        assert_eq!(svg.matches("<circle class=\"mark\"").count(), 3);
        assert_eq!(
            svg.matches("class=\"suppressed\" data-suppressed=\"primary\"")
                .count(),
            1
        );
        let path = svg
            .split("class=\"line\" d=\"")
            .nth(1)
            .expect("a path")
            .split('"')
            .next()
            .expect("d");
        assert_eq!(
            path.matches('M').count(),
            2,
            "the line restarts after the gap: {path}"
        );
        assert!(svg.contains("A &lt;test&gt; chart"), "the title is escaped");
    }

    #[test]
    fn bars_have_a_mark_per_value_and_none_for_missing() {
        let svg = chart(
            Kind::Bars,
            vec![Point::Value(10.0), Point::Missing, Point::Value(0.0)],
        )
        .render();
        assert!(svg.contains("data-points=\"2\""));
        assert_eq!(svg.matches("<rect class=\"mark\"").count(), 2);
        assert!(!svg.contains("data-suppressed=\""));
    }

    #[test]
    fn scales_are_round() {
        assert_eq!(nice_scale(0.0), (0.2, 1.0));
        assert_eq!(nice_scale(9.0), (2.0, 10.0));
        assert_eq!(nice_scale(47.0), (10.0, 50.0));
        let (step, top) = nice_scale(0.42);
        assert!(
            (step - 0.1).abs() < 1e-12 && (top - 0.5).abs() < 1e-9,
            "{step} {top}"
        );
    }
}
