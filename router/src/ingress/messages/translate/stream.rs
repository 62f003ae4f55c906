//! The pipeline's OpenAI chunk stream as Anthropic's event sequence (`message_start`, `ping`,
//! content blocks, `message_delta` with usage and `cost`, `message_stop`; an `error` event when
//! the stream failed). Pure.

use bytes::Bytes;
use serde_json::{Value, json};

use super::{
    request::REASONING_FORMAT,
    response::{cost_of, error_event, message_id, stop_reason, str_of, usage},
};
use crate::providers::anthropic::wire::{
    BlockDelta, ContentBlock, Message, MessageDelta, StreamEvent, Usage,
};

fn event(ev: &StreamEvent) -> Bytes {
    let data = serde_json::to_string(ev).expect("wire types serialize");
    Bytes::from(format!("event: {}\ndata: {data}\n\n", ev.name()))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Open {
    Text,
    Thinking,
    Tool(u64),
}

/// OpenAI chunk payloads -> Anthropic stream events.
#[derive(Default)]
pub struct Stream {
    model: String,
    started: bool,
    open: Option<(Open, usize)>,
    next_index: usize,
    finish_reason: Option<String>,
    native: Option<String>,
    usage: Option<Value>,
    cost: Option<rust_decimal::Decimal>,
    ended: bool,
}

fn empty_thinking() -> ContentBlock {
    ContentBlock::Thinking {
        thinking: String::new(),
        signature: Some(String::new()),
    }
}

impl Stream {
    /// A translator for one stream answering a request for `model`.
    pub fn new(model: &str) -> Self {
        Stream {
            model: model.into(),
            ..Stream::default()
        }
    }

    fn start(&mut self, id: Option<&str>, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        let message = Message {
            id: message_id(id),
            model: self.model.clone(),
            usage: Usage {
                input_tokens: Some(0.into()),
                output_tokens: Some(0.into()),
                ..Usage::default()
            },
            ..Message::default()
        };
        out.push(event(&StreamEvent::MessageStart { message }));
        out.push(event(&StreamEvent::Ping));
    }

    fn close_block(&mut self, out: &mut Vec<Bytes>) {
        if let Some((_, index)) = self.open.take() {
            out.push(event(&StreamEvent::ContentBlockStop { index }));
        }
    }

    fn open_block(&mut self, kind: Open, block: ContentBlock, out: &mut Vec<Bytes>) -> usize {
        if let Some((k, i)) = self.open
            && k == kind
        {
            return i;
        }
        self.close_block(out);
        let index = self.next_index;
        self.next_index += 1;
        out.push(event(&StreamEvent::ContentBlockStart {
            index,
            content_block: block,
        }));
        self.open = Some((kind, index));
        index
    }

    fn delta(index: usize, delta: BlockDelta) -> Bytes {
        event(&StreamEvent::ContentBlockDelta { index, delta })
    }

    fn finish(&mut self, out: &mut Vec<Bytes>) {
        self.start(None, out);
        self.close_block(out);
        let stop = stop_reason(self.finish_reason.as_deref(), self.native.as_deref());
        out.push(event(&StreamEvent::MessageDelta {
            delta: MessageDelta {
                stop_reason: Some(stop.into()),
                stop_sequence: None,
            },
            usage: usage(self.usage.as_ref(), self.cost),
        }));
        out.push(event(&StreamEvent::MessageStop));
        self.ended = true;
    }

    /// Thinking text and signatures, and redacted thinking, of a chunk's delta.
    fn reasoning(&mut self, delta: &Value, out: &mut Vec<Bytes>) {
        let reasoning = delta.get("reasoning").and_then(Value::as_str).unwrap_or("");
        let details = delta
            .get("reasoning_details")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let thinking: String = if reasoning.is_empty() {
            details
                .iter()
                .filter(|d| d["type"] == "reasoning.text")
                .filter_map(|d| d["text"].as_str())
                .collect()
        } else {
            reasoning.to_string()
        };
        if !thinking.is_empty() {
            let i = self.open_block(Open::Thinking, empty_thinking(), out);
            out.push(Self::delta(i, BlockDelta::ThinkingDelta { thinking }));
        }
        for d in details {
            if let Some(sig) = d["signature"].as_str().filter(|s| !s.is_empty()) {
                let i = self.open_block(Open::Thinking, empty_thinking(), out);
                let signature = sig.to_string();
                out.push(Self::delta(i, BlockDelta::SignatureDelta { signature }));
            }
            if d["type"] == "reasoning.encrypted" && d["format"] == REASONING_FORMAT {
                self.close_block(out);
                let data = str_of(d, "data");
                self.open_block(Open::Thinking, ContentBlock::RedactedThinking { data }, out);
                self.close_block(out);
            }
        }
    }

    /// Text and tool calls of a chunk's delta.
    fn content(&mut self, delta: &Value, out: &mut Vec<Bytes>) {
        if let Some(text) = delta
            .get("content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            let i = self.open_block(Open::Text, ContentBlock::text(""), out);
            let text = text.to_string();
            out.push(Self::delta(i, BlockDelta::TextDelta { text }));
        }
        let Some(Value::Array(calls)) = delta.get("tool_calls") else {
            return;
        };
        for c in calls {
            let n = c["index"].as_u64().unwrap_or(0);
            let block = ContentBlock::ToolUse {
                id: str_of(c, "id"),
                name: str_of(&c["function"], "name"),
                input: json!({}),
            };
            let i = self.open_block(Open::Tool(n), block, out);
            if let Some(args) = c["function"]["arguments"]
                .as_str()
                .filter(|a| !a.is_empty())
            {
                let partial_json = args.to_string();
                out.push(Self::delta(i, BlockDelta::InputJsonDelta { partial_json }));
            }
        }
    }

    /// One `data` payload of the pipeline's stream; returns the events to send.
    pub fn on_payload(&mut self, payload: &str) -> Vec<Bytes> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        if payload == "[DONE]" {
            self.finish(&mut out);
            return out;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(payload) else {
            return out;
        };
        if let Some(err) = chunk.get("error") {
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("The upstream failed mid-stream");
            out.push(event(&error_event(500, message)));
            self.ended = true;
            return out;
        }
        self.start(chunk["id"].as_str(), &mut out);
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(u.clone());
            self.cost = cost_of(payload.as_bytes());
        }
        let Some(choice) = chunk["choices"].get(0) else {
            return out;
        };
        self.reasoning(&choice["delta"], &mut out);
        self.content(&choice["delta"], &mut out);
        if let Some(f) = choice["finish_reason"].as_str() {
            self.finish_reason = Some(f.to_string());
            self.native = choice["native_finish_reason"].as_str().map(str::to_string);
        }
        out
    }

    /// Whether the stream has sent its last event.
    pub fn ended(&self) -> bool {
        self.ended
    }
}
