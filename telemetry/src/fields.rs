//! The text log's fields, written as tracing-subscriber's `DefaultFields` writes them without
//! colours (`name=value`, strings quoted and escaped as `{:?}` does, a space between fields), but
//! without its styling machinery for each field: the access log writes one line of twenty fields
//! per request, and the default visitor spent about a thousand instructions on each. The message,
//! `r#` names and `log.` names, and every field of a coloured (terminal) writer, are left to
//! `DefaultVisitor` itself.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::{
    field::{MakeVisitor, VisitFmt, VisitOutput},
    fmt::format::{DefaultVisitor, Writer},
};

/// The [`MakeVisitor`] of the text log's fields (see the module's doc).
#[derive(Debug, Default, Clone, Copy)]
pub struct PlainFields;

impl<'a> MakeVisitor<Writer<'a>> for PlainFields {
    type Visitor = PlainVisitor<'a>;

    fn make_visitor(&self, target: Writer<'a>) -> PlainVisitor<'a> {
        PlainVisitor {
            writer: target,
            is_empty: true,
            result: Ok(()),
        }
    }
}

/// Writes the fields of one event or span (see [`PlainFields`]).
#[derive(Debug)]
pub struct PlainVisitor<'a> {
    writer: Writer<'a>,
    is_empty: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    /// Whether `field` is written here rather than by `DefaultVisitor`.
    fn plain(&self, field: &Field) -> bool {
        let name = field.name();
        !self.writer.has_ansi_escapes()
            && name != "message"
            && !name.starts_with("r#")
            && !name.starts_with("log.")
    }

    /// `DefaultVisitor` writes one field, padded as this visitor would.
    fn delegate(&mut self, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        let mut v = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut v);
        self.result = v.finish();
        // It writes nothing for a `log.` field; the next field's space is still due after an
        // earlier field only, which a field it skipped does not change.
        self.is_empty = false;
    }

    /// The separating space and `name=`.
    fn name(&mut self, field: &Field) {
        if !self.is_empty {
            self.result = self.writer.write_char(' ');
        }
        self.is_empty = false;
        if self.result.is_ok() {
            self.result = self
                .writer
                .write_str(field.name())
                .and_then(|()| self.writer.write_char('='));
        }
    }
}

/// What `{:?}` writes for a string needs no escape when every byte is printable ASCII other
/// than `"` and `\`.
fn needs_no_escape(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        if !self.plain(field) {
            return self.delegate(|v| v.record_str(field, value));
        }
        self.name(field);
        if self.result.is_ok() {
            self.result = if needs_no_escape(value) {
                self.writer
                    .write_char('"')
                    .and_then(|()| self.writer.write_str(value))
                    .and_then(|()| self.writer.write_char('"'))
            } else {
                write!(self.writer, "{value:?}")
            };
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.result.is_err() {
            return;
        }
        if !self.plain(field) {
            return self.delegate(|v| v.record_u64(field, value));
        }
        self.name(field);
        if self.result.is_ok() {
            self.result = write!(self.writer, "{value}");
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.result.is_err() {
            return;
        }
        if !self.plain(field) {
            return self.delegate(|v| v.record_i64(field, value));
        }
        self.name(field);
        if self.result.is_ok() {
            self.result = write!(self.writer, "{value}");
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.result.is_err() {
            return;
        }
        if !self.plain(field) {
            return self.delegate(|v| v.record_bool(field, value));
        }
        self.name(field);
        if self.result.is_ok() {
            self.result = self.writer.write_str(if value { "true" } else { "false" });
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.result.is_err() {
            return;
        }
        self.delegate(|v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        if !self.plain(field) {
            return self.delegate(|v| v.record_debug(field, value));
        }
        self.name(field);
        if self.result.is_ok() {
            self.result = write!(self.writer, "{value:?}");
        }
    }
}

impl VisitOutput<fmt::Result> for PlainVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for PlainVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::{
        fmt::{FormatFields, MakeWriter, format::DefaultFields},
        layer::SubscriberExt,
    };

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    fn events() {
        let err = std::io::Error::other("boom \"x\"");
        let span = tracing::info_span!("req", id = 7u64, who = "a b");
        let _g = span.enter();
        tracing::info!(
            target: "switchboard::access",
            generation_id = %"gen-1-abc",
            endpoint = "chat",
            key = "key-0000",
            model = %"bench/chat",
            status = 200u16,
            stream = false,
            attempts = 1u32,
            prompt_tokens = 250u64,
            delta = -3i64,
            cost = %rust_decimal_like(),
            quoted = "say \"hi\"\\ é\n",
            usage_anomaly = Option::<String>::None,
            ratio = 0.5f64,
            "request"
        );
        tracing::warn!(
            error = &err as &(dyn std::error::Error + 'static),
            r#type = "t",
            "failed: {}",
            3
        );
        tracing::info!(x = 1u64);
    }

    fn rust_decimal_like() -> String {
        "0.0000423".into()
    }

    fn render<F>(fields: F) -> String
    where
        F: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let buf = Buf::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .without_time()
                .fmt_fields(fields)
                .with_writer(buf.clone()),
        );
        tracing::subscriber::with_default(subscriber, events);
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn lines_are_the_default_formatters() {
        let plain = render(PlainFields);
        assert_eq!(plain, render(DefaultFields::new()));
        assert!(plain.contains(r#"key="key-0000""#), "{plain}");
        assert!(plain.contains("prompt_tokens=250 delta=-3"), "{plain}");
        assert_eq!(plain.lines().count(), 3, "{plain}");
    }
}
