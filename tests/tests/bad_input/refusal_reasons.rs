//! Every refusal reason a service gives is in its contract. A refused request carries a
//! machine-readable reason (`google.rpc.ErrorInfo.reason`, e.g. `CLAIM_EXISTS`); each service's
//! proto lists its reasons in `enum <Service>Refusal` (value `<SERVICE>_REFUSAL_<REASON>`) and the
//! platform's in `PlatformRefusal` (common.proto). The reasons are written as string literals in
//! the service code, so this test reads the sources and holds the two together: every reason the
//! code gives is a value of its service's enum or of `PlatformRefusal`, and every value is given
//! somewhere (no stale reasons).
//!
//! The scanner is deliberately small. It reads `services/<name>/src` and `crates/platform/src`
//! with comments and `#[cfg(test)]` items blanked out (test modules name reasons in assertions,
//! not in refusals), and finds a reason in:
//! - the reason argument of a *refusal helper*: any function with a parameter
//!   `reason: &'static str` (`ApiError::refused` and a service's own `require`-style helpers),
//!   found in the platform and in the service itself;
//! - the `reason:` field of an `ApiError::FailedPrecondition { … }` or
//!   `ApiError::PermissionDenied { … }` literal.
//!
//! The reason there is a string literal; a constant (`const NAME: &str = "…"`, resolved in the
//! service or the platform); a variable — a helper's own `&'static str` parameter passed on (its
//! callers are scanned) or a local that takes the UPPER_SNAKE literals written before it in its
//! function; or a method call `x.name()` whose `fn name(…) -> &'static str` is a table of
//! literals. Anything else fails the test, so a new way of writing a reason cannot slip past.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use prost_reflect::DescriptorPool;

/// The package every contract enum is in.
const PACKAGE: &str = "ekspertbistand.v1";

/// The fewest distinct reasons the scanner must find in each service (today's counts, a platform
/// reason the service gives itself included), so a scanner that stopped finding them cannot pass
/// with emptied enums.
const MINIMUM_REASONS: &[(&str, usize)] = &[
    ("applications", 25),
    ("budget", 1),
    ("expert-registry", 1),
    ("pilot-ordering", 24),
    ("refunds", 17),
    ("routing", 2),
];

/// One reason given in the code: where, for the failure message.
#[derive(Debug, Clone)]
struct Given {
    reason: String,
    file: PathBuf,
    line: usize,
}

#[test]
fn every_refusal_reason_is_in_its_services_refusal_enum_and_every_value_is_given() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let pool = DescriptorPool::decode(ekb_proto::FILE_DESCRIPTOR_SET).expect("descriptor set");
    let platform = Crate::read(&root, "crates/platform/src");
    let platform_enum = refusal_values(&pool, "PlatformRefusal");
    let mut problems = Vec::new();

    let platform_given = platform.reasons(&platform, &mut problems);
    check(
        "platform",
        &platform_given,
        &platform_enum,
        &BTreeSet::new(),
        &mut problems,
    );

    for (service, minimum) in MINIMUM_REASONS {
        let sources = Crate::read(&root, &format!("services/{service}/src"));
        let given = sources.reasons(&platform, &mut problems);
        let enum_name = format!("{}Refusal", upper_camel(service));
        let own = refusal_values(&pool, &enum_name);
        check(service, &given, &own, &platform_enum, &mut problems);
        let distinct: BTreeSet<&str> = given.iter().map(|g| g.reason.as_str()).collect();
        if distinct.len() < *minimum {
            problems.push(format!(
                "{service}: the scanner found {} distinct reasons ({distinct:?}), expected at least \
                 {minimum}; has the way reasons are written changed?",
                distinct.len()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Each reason `given` by `owner` is in `own` or `shared`; each value of `own` is given.
fn check(
    owner: &str,
    given: &[Given],
    own: &BTreeSet<String>,
    shared: &BTreeSet<String>,
    problems: &mut Vec<String>,
) {
    for reason in given {
        if !own.contains(&reason.reason) && !shared.contains(&reason.reason) {
            problems.push(format!(
                "{owner}: {}:{} gives reason {} that is not in its refusal enum",
                reason.file.display(),
                reason.line,
                reason.reason
            ));
        }
    }
    for value in own {
        if !given.iter().any(|reason| &reason.reason == value) {
            problems.push(format!(
                "{owner}: the refusal enum has {value}, which no refusal in its sources gives"
            ));
        }
    }
}

/// The reasons `enum_name` lists: its value names without the `<ENUM>_` prefix, UNSPECIFIED left
/// out. A missing enum is an empty set (and every reason given is then reported).
fn refusal_values(pool: &DescriptorPool, enum_name: &str) -> BTreeSet<String> {
    let Some(descriptor) = pool.get_enum_by_name(&format!("{PACKAGE}.{enum_name}")) else {
        return BTreeSet::new();
    };
    let prefix = format!("{}_", upper_snake(enum_name));
    descriptor
        .values()
        .filter(|value| value.number() != 0)
        .map(|value| {
            let name = value.name();
            name.strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("{enum_name}: value {name} does not start with {prefix}"))
                .to_owned()
        })
        .collect()
}

/// `pilot-ordering` → `PilotOrdering`.
fn upper_camel(service: &str) -> String {
    service
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect::<String>()
            })
        })
        .collect()
}

/// `PilotOrderingRefusal` → `PILOT_ORDERING_REFUSAL`.
fn upper_snake(camel: &str) -> String {
    let mut snake = String::new();
    for (index, char) in camel.chars().enumerate() {
        if char.is_uppercase() && index > 0 {
            snake.push('_');
        }
        snake.extend(char.to_uppercase());
    }
    snake
}

/// The Rust sources of one crate, each with comments and `#[cfg(test)]` items blanked out
/// (same byte offsets, so line numbers stay right).
struct Crate {
    files: Vec<(PathBuf, String)>,
}

impl Crate {
    /// Reads every `.rs` file under `root/dir`, leaving out test module files (`tests.rs`).
    fn read(root: &Path, dir: &str) -> Crate {
        let mut paths = Vec::new();
        collect_rust_files(&root.join(dir), &mut paths);
        assert!(!paths.is_empty(), "no Rust sources under {dir}");
        paths.sort();
        let files = paths
            .into_iter()
            .filter(|path| path.file_stem().is_some_and(|stem| stem != "tests"))
            .map(|path| {
                let source = std::fs::read_to_string(&path).expect("read source");
                let shown = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
                (shown, without_tests(&without_comments(&source)))
            })
            .collect();
        Crate { files }
    }

    /// Every reason this crate gives, with refusal helpers taken from this crate and `platform`.
    /// What the scanner cannot read is added to `problems`.
    fn reasons(&self, platform: &Crate, problems: &mut Vec<String>) -> Vec<Given> {
        let mut helpers = platform.helpers();
        helpers.extend(self.helpers());
        let mut given = Vec::new();
        for (file, code) in &self.files {
            let mut arguments = Vec::new();
            for (name, index) in &helpers {
                for (_, args) in calls(code, name) {
                    if let Some(&(offset, argument)) = args.get(*index) {
                        arguments.push((offset, argument));
                    }
                }
            }
            for (offset, argument) in reason_fields(code) {
                arguments.push((offset, argument));
            }
            for (offset, argument) in arguments {
                let here = Given {
                    reason: String::new(),
                    file: file.clone(),
                    line: line_of(code, offset),
                };
                match self.resolve(argument, (code, offset), &here, platform) {
                    Some(found) => given.extend(found),
                    None => problems.push(format!(
                        "{}:{}: cannot read the refusal reason `{argument}`; write a literal, a \
                         constant or a table method, or teach this scanner",
                        here.file.display(),
                        here.line
                    )),
                }
            }
        }
        given
    }

    /// The reasons `argument` (at `offset` in `code`, written `here`) stands for, each where its
    /// text is written; none for the reason parameter of a helper passed on; `None` if the
    /// scanner cannot read it.
    fn resolve(
        &self,
        argument: &str,
        (code, offset): (&str, usize),
        here: &Given,
        platform: &Crate,
    ) -> Option<Vec<Given>> {
        if let Some(reason) = upper_snake_literal(argument) {
            let reason = reason.to_owned();
            return Some(vec![Given {
                reason,
                ..here.clone()
            }]);
        }
        let last = argument.rsplit("::").next().unwrap_or(argument);
        if is_upper_snake(last) {
            return Some(vec![
                self.constant(last).or_else(|| platform.constant(last))?,
            ]);
        }
        if is_identifier(argument) {
            return variable(argument, code, offset, &here.file);
        }
        let method = argument.strip_suffix("()")?.rsplit('.').next()?;
        self.table(method)
    }

    /// Refusal helpers: name → index of the `reason: &'static str` parameter (after `self`).
    fn helpers(&self) -> BTreeMap<String, usize> {
        let mut helpers = BTreeMap::new();
        for (_, code) in &self.files {
            for Function { name, params, .. } in functions(code) {
                let params: Vec<&str> = split_top_level(params)
                    .into_iter()
                    .map(|(_, param)| param)
                    .filter(|param| !param.ends_with("self"))
                    .collect();
                if let Some(index) = params
                    .iter()
                    .position(|param| squeeze(param) == "reason:&'staticstr")
                {
                    helpers.insert(name.to_owned(), index);
                }
            }
        }
        helpers
    }

    /// `const NAME: &str = "VALUE";` in this crate: the value, file and line.
    fn constant(&self, name: &str) -> Option<Given> {
        let needle = format!("const {name}:");
        self.files.iter().find_map(|(file, code)| {
            let at = code.find(&needle)?;
            let rest = &code[at..];
            let value = rest[rest.find('=')? + 1..rest.find(';')?].trim();
            let reason = upper_snake_literal(value)?;
            Some(Given {
                reason: reason.to_owned(),
                file: file.clone(),
                line: line_of(code, at),
            })
        })
    }

    /// The literals of `fn name(…) -> &'static str { … }` in this crate: a table of reasons.
    fn table(&self, name: &str) -> Option<Vec<Given>> {
        let needle = format!("fn {name}(");
        self.files.iter().find_map(|(file, code)| {
            let at = code.find(&needle)?;
            let open = at + code[at..].find('{')?;
            if !squeeze(&code[at..open]).ends_with("->&'staticstr") {
                return None;
            }
            let close = matching(code, open)?;
            let body = &code[open..close];
            let reasons: Vec<_> = literals(body)
                .filter_map(|(offset, literal)| {
                    let reason = upper_snake_literal(literal)?;
                    Some(Given {
                        reason: reason.to_owned(),
                        file: file.clone(),
                        line: line_of(code, open + offset),
                    })
                })
                .collect();
            (!reasons.is_empty()).then_some(reasons)
        })
    }
}

fn collect_rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect_rust_files(&path, into);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            into.push(path);
        }
    }
}

/// Every call `name(…)` (a function or method, not its definition): the offset of each argument
/// and its text, trimmed.
fn calls<'a>(code: &'a str, name: &str) -> Vec<(usize, Vec<(usize, &'a str)>)> {
    let needle = format!("{name}(");
    let mut found = Vec::new();
    for (at, _) in code.match_indices(&needle) {
        let before = &code[..at];
        let preceded_by_ident = before
            .chars()
            .next_back()
            .is_some_and(|char| char.is_alphanumeric() || char == '_');
        if preceded_by_ident || before.trim_end().ends_with("fn") {
            continue;
        }
        let open = at + name.len();
        let Some(close) = matching(code, open) else {
            continue;
        };
        let args = split_top_level(&code[open + 1..close])
            .into_iter()
            .map(|(offset, arg)| (open + 1 + offset, arg))
            .collect();
        found.push((at, args));
    }
    found
}

/// The value of the `reason:` field in every `ApiError::FailedPrecondition { … }` and
/// `ApiError::PermissionDenied { … }` literal (patterns with the shorthand `reason` have none).
fn reason_fields(code: &str) -> Vec<(usize, &str)> {
    let mut found = Vec::new();
    for variant in ["ApiError::FailedPrecondition", "ApiError::PermissionDenied"] {
        for (at, _) in code.match_indices(variant) {
            let rest = &code[at + variant.len()..];
            if !rest.trim_start().starts_with('{') {
                continue;
            }
            let open = at + variant.len() + rest.find('{').unwrap_or(0);
            let Some(close) = matching(code, open) else {
                continue;
            };
            for (offset, field) in split_top_level(&code[open + 1..close]) {
                if let Some(value) = field.strip_prefix("reason:") {
                    let value_offset = open + 1 + offset + field.len() - value.len();
                    found.push((value_offset, value.trim()));
                }
            }
        }
    }
    found
}

/// A variable `name` used as the reason at `offset`: nothing if it is a `&'static str`
/// parameter of the enclosing function (a helper passing its reason on; its callers are
/// scanned), else every UPPER_SNAKE literal written earlier in that function (the values the
/// variable was given, e.g. `let refusal = match … { … => Some("GRANT_SETTLED"), … }`).
fn variable(name: &str, code: &str, offset: usize, file: &Path) -> Option<Vec<Given>> {
    let function = functions(code)
        .into_iter()
        .filter(|function| {
            function
                .body
                .is_some_and(|(open, close)| open < offset && offset < close)
        })
        .max_by_key(|function| function.body.map(|(open, _)| open))?;
    let parameter = format!("{name}:&'staticstr");
    if split_top_level(function.params)
        .iter()
        .any(|(_, param)| squeeze(param) == parameter)
    {
        return Some(Vec::new());
    }
    let (open, _) = function.body?;
    let values: Vec<Given> = literals(&code[open..offset])
        .filter_map(|(at, literal)| {
            Some(Given {
                reason: upper_snake_literal(literal)?.to_owned(),
                file: file.to_path_buf(),
                line: line_of(code, open + at),
            })
        })
        .collect();
    (!values.is_empty()).then_some(values)
}

/// A function in the source: its name, parameter text and body (offsets of its braces; none
/// for a declaration without a body).
struct Function<'a> {
    name: &'a str,
    params: &'a str,
    body: Option<(usize, usize)>,
}

/// Each `fn name(params) … { body }` in `code`.
fn functions(code: &str) -> Vec<Function<'_>> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices("fn ") {
        if code[..at]
            .chars()
            .next_back()
            .is_some_and(|char| char.is_alphanumeric() || char == '_')
        {
            continue;
        }
        let rest = &code[at + 3..];
        let name_end = rest
            .find(|char: char| !(char.is_alphanumeric() || char == '_'))
            .unwrap_or(rest.len());
        // Generic parameters (`fn name<T>(`) are not used by refusal helpers.
        if !rest[name_end..].starts_with('(') {
            continue;
        }
        let open = at + 3 + name_end;
        let Some(close) = matching(code, open) else {
            continue;
        };
        let body = code[close..]
            .find(['{', ';'])
            .map(|end| close + end)
            .filter(|&end| code.as_bytes()[end] == b'{')
            .and_then(|brace| Some((brace, matching(code, brace)?)));
        found.push(Function {
            name: &rest[..name_end],
            params: &code[open + 1..close],
            body,
        });
    }
    found
}

fn is_identifier(text: &str) -> bool {
    text.starts_with(|char: char| char.is_ascii_lowercase() || char == '_')
        && text
            .chars()
            .all(|char| char.is_ascii_alphanumeric() || char == '_')
}

/// Splits `text` at commas outside brackets and strings: each part's offset and trimmed text.
fn split_top_level(text: &str) -> Vec<(usize, &str)> {
    let mut parts = Vec::new();
    let mut depth = 0_i32;
    let mut start = 0;
    let mut index = 0;
    let bytes = text.as_bytes();
    while index < bytes.len() {
        match bytes[index] {
            b'"' => index = end_of_string(bytes, index),
            b'(' | b'[' | b'{' | b'<' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            // `->` and `=>` are arrows, not closing angle brackets.
            b'>' if index > 0 && !matches!(bytes[index - 1], b'-' | b'=') => depth -= 1,
            b',' if depth == 0 => {
                parts.push(trimmed(text, start, index));
                start = index + 1;
            }
            _ => {}
        }
        index += 1;
    }
    let last = trimmed(text, start, text.len());
    if !last.1.is_empty() {
        parts.push(last);
    }
    parts
}

fn trimmed(text: &str, start: usize, end: usize) -> (usize, &str) {
    let part = &text[start..end];
    let leading = part.len() - part.trim_start().len();
    (start + leading, part.trim())
}

/// The offset of the bracket closing the one at `open`, skipping strings.
fn matching(code: &str, open: usize) -> Option<usize> {
    let bytes = code.as_bytes();
    let (opening, closing) = match bytes[open] {
        b'(' => (b'(', b')'),
        b'{' => (b'{', b'}'),
        b'[' => (b'[', b']'),
        _ => return None,
    };
    let mut depth = 0;
    let mut index = open;
    while index < bytes.len() {
        match bytes[index] {
            b'"' => index = end_of_string(bytes, index),
            byte if byte == opening => depth += 1,
            byte if byte == closing => {
                depth -= 1;
                if depth == 0 {
                    return Some(index);
                }
            }
            _ => {}
        }
        index += 1;
    }
    None
}

/// The offset of the `"` closing the string opened at `open`.
fn end_of_string(bytes: &[u8], open: usize) -> usize {
    let mut index = open + 1;
    while index < bytes.len() {
        match bytes[index] {
            b'\\' => index += 1,
            b'"' => return index,
            _ => {}
        }
        index += 1;
    }
    bytes.len()
}

/// The string literals in `code`: offset and text with quotes.
fn literals(code: &str) -> impl Iterator<Item = (usize, &str)> {
    let bytes = code.as_bytes();
    let mut index = 0;
    std::iter::from_fn(move || {
        while index < bytes.len() {
            if bytes[index] == b'"' {
                let end = end_of_string(bytes, index);
                let literal = (index, &code[index..=end.min(bytes.len() - 1)]);
                index = end + 1;
                return Some(literal);
            }
            index += 1;
        }
        None
    })
}

/// `"SOME_REASON"` → `SOME_REASON`; anything else → `None`.
fn upper_snake_literal(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    is_upper_snake(inner).then_some(inner)
}

fn is_upper_snake(text: &str) -> bool {
    text.starts_with(|char: char| char.is_ascii_uppercase())
        && text
            .chars()
            .all(|char| char.is_ascii_uppercase() || char.is_ascii_digit() || char == '_')
}

fn squeeze(text: &str) -> String {
    text.chars().filter(|char| !char.is_whitespace()).collect()
}

fn line_of(code: &str, offset: usize) -> usize {
    code[..offset].matches('\n').count() + 1
}

/// `source` with every comment replaced by spaces (newlines kept). Strings, raw strings and
/// character literals are stepped over so a `//` or `"` inside them is not taken for code.
fn without_comments(source: &str) -> String {
    let mut bytes = source.as_bytes().to_vec();
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'/' if bytes.get(index + 1) == Some(&b'/') => {
                while index < bytes.len() && bytes[index] != b'\n' {
                    bytes[index] = b' ';
                    index += 1;
                }
            }
            b'/' if bytes.get(index + 1) == Some(&b'*') => {
                let mut depth = 0;
                while index < bytes.len() {
                    if bytes[index..].starts_with(b"/*") {
                        depth += 1;
                        blank(&mut bytes, index, 2);
                        index += 2;
                    } else if bytes[index..].starts_with(b"*/") {
                        depth -= 1;
                        blank(&mut bytes, index, 2);
                        index += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        blank(&mut bytes, index, 1);
                        index += 1;
                    }
                }
            }
            b'r' if raw_string_start(&bytes, index).is_some() => {
                let hashes = raw_string_start(&bytes, index).unwrap_or(0);
                let mut terminator = vec![b'"'];
                terminator.extend(std::iter::repeat_n(b'#', hashes));
                index += 2 + hashes;
                while index < bytes.len() && !bytes[index..].starts_with(&terminator) {
                    index += 1;
                }
                index += terminator.len();
            }
            b'"' => index = end_of_string(&bytes, index) + 1,
            b'\'' => index = end_of_char_literal(&bytes, index),
            _ => index += 1,
        }
    }
    String::from_utf8(bytes).expect("blanking keeps UTF-8")
}

/// Replaces `len` bytes at `at` by spaces, keeping newlines.
fn blank(bytes: &mut [u8], at: usize, len: usize) {
    for byte in &mut bytes[at..at + len] {
        if *byte != b'\n' {
            *byte = b' ';
        }
    }
}

/// The number of `#`s if a raw string (`r"`, `r#"`) starts at `at`.
fn raw_string_start(bytes: &[u8], at: usize) -> Option<usize> {
    if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
        return None;
    }
    let hashes = bytes[at + 1..].iter().take_while(|&&b| b == b'#').count();
    (bytes.get(at + 1 + hashes) == Some(&b'"')).then_some(hashes)
}

/// Past a character literal (`'x'`, `'\n'`, `'"'`) at `at`, or past the `'` of a lifetime.
fn end_of_char_literal(bytes: &[u8], at: usize) -> usize {
    if bytes.get(at + 1) == Some(&b'\\') {
        let mut index = at + 2;
        while index < bytes.len() && bytes[index] != b'\'' {
            index += 1;
        }
        return index + 1;
    }
    let width = bytes
        .get(at + 1)
        .map_or(1, |&first| match first.leading_ones() {
            0 => 1,
            ones => ones as usize,
        });
    if bytes.get(at + 1 + width) == Some(&b'\'') {
        at + 2 + width
    } else {
        at + 1
    }
}

/// `code` (without comments) with every `#[cfg(test)]` item blanked out: an inline test module
/// (`mod tests { … }`) or fixture module.
fn without_tests(code: &str) -> String {
    let mut bytes = code.as_bytes().to_vec();
    let mut from = 0;
    while let Some(found) = code[from..].find("#[cfg(test)]") {
        let at = from + found;
        let rest = &code[at..];
        let Some(end) = rest.find(['{', ';']).and_then(|item_end| {
            let item_end = at + item_end;
            if code.as_bytes()[item_end] == b';' {
                Some(item_end)
            } else {
                matching(code, item_end)
            }
        }) else {
            break;
        };
        blank(&mut bytes, at, end + 1 - at);
        from = end + 1;
    }
    String::from_utf8(bytes).expect("blanking keeps UTF-8")
}
