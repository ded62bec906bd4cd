//! The text a protobuf record carries, found without knowing its message type.
//!
//! Why: what the broker and the outbox hold is protobuf — an envelope around an event — and a
//! fødselsnummer in a string field sits between bytes that are not text: a length before it and
//! the next field's tag after it, and a tag can be an ASCII digit ('0' is field 6 as a varint,
//! '2' field 6 length-delimited). Scanning the raw bytes as text would glue that digit to the
//! number and miss it, or cut a longer number in two. Walking the wire format gives each string
//! field's bytes on their own, exactly as the producer wrote them, for every event type, past
//! and future, with no descriptor.
//!
//! A length-delimited field is a string, bytes or a nested message; the wire format does not
//! say which. A field that is printable UTF-8 is taken as text; any other is opened as a
//! message if it parses as one (an envelope's payload), else taken as opaque bytes.

/// How deep nested messages are opened.
const MAX_DEPTH: usize = 16;

/// The text fields of `message`, through its nested messages; `None` if `message` is not
/// protobuf wire format.
pub fn text_fields(message: &[u8]) -> Option<Vec<&[u8]>> {
    let mut found = Vec::new();
    collect(message, 0, &mut found)?;
    Some(found)
}

fn collect<'a>(message: &'a [u8], depth: usize, found: &mut Vec<&'a [u8]>) -> Option<()> {
    for field in fields(message)? {
        if is_text(field) {
            found.push(field);
        } else if depth < MAX_DEPTH {
            let mut nested = Vec::new();
            if collect(field, depth + 1, &mut nested).is_some() {
                found.extend(nested);
            }
        }
    }
    Some(())
}

/// The length-delimited fields of one message level; `None` if it is not wire format.
fn fields(message: &[u8]) -> Option<Vec<&[u8]>> {
    let mut fields = Vec::new();
    let mut rest = message;
    while !rest.is_empty() {
        let tag = varint(&mut rest)?;
        if tag >> 3 == 0 {
            return None;
        }
        match tag & 7 {
            0 => {
                varint(&mut rest)?;
            }
            1 => rest = rest.get(8..)?,
            2 => {
                let length = usize::try_from(varint(&mut rest)?).ok()?;
                fields.push(rest.get(..length)?);
                rest = rest.get(length..)?;
            }
            5 => rest = rest.get(4..)?,
            _ => return None,
        }
    }
    Some(fields)
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Printable UTF-8 (tabs and line breaks allowed), so a string rather than a message.
fn is_text(field: &[u8]) -> bool {
    std::str::from_utf8(field).is_ok_and(|text| {
        text.chars()
            .all(|character| !character.is_control() || matches!(character, '\n' | '\r' | '\t'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A length-delimited field `number` holding `content`.
    fn field(number: u8, content: &[u8]) -> Vec<u8> {
        let mut bytes = vec![
            (number << 3) | 2,
            u8::try_from(content.len()).expect("short"),
        ];
        bytes.extend_from_slice(content);
        bytes
    }

    #[test]
    fn strings_are_found_through_nested_messages_without_the_tags_around_them() {
        let mut event = field(6, b"01018012345");
        event.extend([0x30, 0x01]); // field 6 as a varint: its tag is the byte '0'
        event.extend(field(7, b"hello"));
        let mut envelope = field(1, b"c0ffee00-0000-4000-8000-000000000000");
        envelope.extend(field(5, &event));
        assert_eq!(
            text_fields(&envelope).expect("wire format"),
            vec![
                b"c0ffee00-0000-4000-8000-000000000000".as_slice(),
                b"01018012345".as_slice(),
                b"hello".as_slice()
            ]
        );
    }

    #[test]
    fn what_is_not_wire_format_is_refused() {
        assert_eq!(text_fields(b"plain text, not protobuf"), None);
        assert_eq!(
            text_fields(&[0x0a, 0x05, b'a']),
            None,
            "a length beyond the end"
        );
    }
}
