//! The pipeline's chat stream as the Responses event sequence. Pure: chat payloads in, SSE frames
//! out, each `event: <type>` with a `sequence_number` counting from 0.
//!
//! `response.created` and `response.in_progress` open the stream; each output item is
//! `response.output_item.added`, its deltas (`response.reasoning_summary_text.delta`,
//! `response.output_text.delta`, `response.function_call_arguments.delta`,
//! `response.custom_tool_call_input.delta`), their `.done` events and `response.output_item.done`
//! (Codex acts on that one); the usage chunk prices the answer, and `[DONE]` ends it with
//! `response.completed` (`response.incomplete` after a length cut) carrying the whole response.
//! An error chunk ends it with `response.failed`.

use bytes::Bytes;
use serde_json::{Value, json};

use super::response::{Answer, Context, OutputItem, priced_usage, response_object};
use crate::streaming::{
    responses::{failed_event, sse_frame},
    sse::PayloadTranslator,
};

/// The item being streamed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Reasoning(usize),
    Message(usize),
    /// A tool call: its output index and its chat `tool_calls` index.
    Call(usize, u64),
}

/// Translation state of one stream.
pub struct Stream {
    ctx: Context,
    answer: Answer,
    sequence: u64,
    started: bool,
    open: Option<Open>,
    /// Output index of each chat tool-call index.
    calls: Vec<(u64, usize)>,
    ended: bool,
    /// The final `response` object, once the stream completed.
    completed: Option<Value>,
}

impl Stream {
    /// A translator for the response `ctx` describes.
    pub fn new(ctx: Context) -> Self {
        Stream {
            ctx,
            answer: Answer::default(),
            sequence: 0,
            started: false,
            open: None,
            calls: Vec::new(),
            ended: false,
            completed: None,
        }
    }

    /// The completed `response` object (what a stored response keeps), once the stream ended
    /// with it.
    pub fn completed(&self) -> Option<&Value> {
        self.completed.as_ref()
    }

    /// Sends event `kind` with the fields of `fields`, numbered.
    fn emit(&mut self, out: &mut Vec<Bytes>, kind: &str, fields: Value) {
        let mut data = serde_json::Map::new();
        data.insert("type".into(), json!(kind));
        if let Value::Object(fields) = fields {
            data.extend(fields);
        }
        data.insert("sequence_number".into(), json!(self.sequence));
        self.sequence += 1;
        out.push(sse_frame(kind, &Value::Object(data).to_string()));
    }

    fn item_json(&self, index: usize, status: &str) -> Value {
        self.answer.items[index].to_json(&self.ctx, index, status)
    }

    fn start(&mut self, chunk: &Value, out: &mut Vec<Bytes>) {
        self.started = true;
        self.answer.created = chunk["created"].as_u64().unwrap_or(0);
        self.answer.model = chunk["model"].as_str().unwrap_or("").to_string();
        let mut response = response_object(&self.ctx, &self.answer, Some("in_progress"));
        response["usage"] = Value::Null;
        self.emit(out, "response.created", json!({"response": response}));
        self.emit(out, "response.in_progress", json!({"response": response}));
    }

    /// Opens a new item, closing the current one.
    fn open(&mut self, item: OutputItem, out: &mut Vec<Bytes>) -> usize {
        self.close(out);
        let index = self.answer.items.len();
        self.answer.items.push(item);
        let added = self.item_json(index, "in_progress");
        let id = added["id"].clone();
        self.emit(
            out,
            "response.output_item.added",
            json!({"output_index": index, "item": added}),
        );
        match &self.answer.items[index] {
            OutputItem::Reasoning { .. } => {
                self.open = Some(Open::Reasoning(index));
                self.emit(
                    out,
                    "response.reasoning_summary_part.added",
                    json!({
                    "item_id": id, "output_index": index, "summary_index": 0,
                    "part": {"type": "summary_text", "text": ""}}),
                );
            }
            OutputItem::Message { .. } => {
                self.open = Some(Open::Message(index));
                self.emit(out, "response.content_part.added", json!({
                    "item_id": id, "output_index": index, "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}));
            }
            OutputItem::Call { .. } => {}
        }
        index
    }

    /// Closes the open item with its `.done` events.
    fn close(&mut self, out: &mut Vec<Bytes>) {
        let Some(open) = self.open.take() else {
            return;
        };
        let (Open::Reasoning(index) | Open::Message(index) | Open::Call(index, _)) = open;
        let done = self.item_json(index, "completed");
        let id = done["id"].clone();
        match &self.answer.items[index] {
            OutputItem::Reasoning { text, .. } => {
                let text = text.clone();
                self.emit(
                    out,
                    "response.reasoning_summary_text.done",
                    json!({
                    "item_id": id, "output_index": index, "summary_index": 0, "text": text}),
                );
                self.emit(
                    out,
                    "response.reasoning_summary_part.done",
                    json!({
                    "item_id": id, "output_index": index, "summary_index": 0,
                    "part": {"type": "summary_text", "text": text}}),
                );
            }
            OutputItem::Message { text, .. } => {
                let text = text.clone();
                self.emit(
                    out,
                    "response.output_text.done",
                    json!({
                    "item_id": id, "output_index": index, "content_index": 0, "text": text,
                    "logprobs": []}),
                );
                self.emit(
                    out,
                    "response.content_part.done",
                    json!({
                    "item_id": id, "output_index": index, "content_index": 0,
                    "part": done["content"][0]}),
                );
            }
            OutputItem::Call { arguments, .. } => {
                if done["type"] == "custom_tool_call" {
                    // The input is only known whole: it is a field of the JSON arguments.
                    let input = done["input"].clone();
                    self.emit(
                        out,
                        "response.custom_tool_call_input.delta",
                        json!({
                        "item_id": id, "output_index": index, "delta": input}),
                    );
                    self.emit(
                        out,
                        "response.custom_tool_call_input.done",
                        json!({
                        "item_id": id, "output_index": index, "input": input}),
                    );
                } else {
                    let arguments = arguments.clone();
                    self.emit(
                        out,
                        "response.function_call_arguments.done",
                        json!({
                        "item_id": id, "output_index": index, "arguments": arguments}),
                    );
                }
            }
        }
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": index, "item": done}),
        );
    }

    fn on_reasoning(&mut self, text: &str, details: &[Value], out: &mut Vec<Bytes>) {
        let index = match self.open {
            Some(Open::Reasoning(i)) => i,
            _ => self.open(
                OutputItem::Reasoning {
                    text: String::new(),
                    details: Vec::new(),
                },
                out,
            ),
        };
        if let OutputItem::Reasoning {
            text: t,
            details: d,
        } = &mut self.answer.items[index]
        {
            t.push_str(text);
            merge_details(d, details);
        }
        if !text.is_empty() {
            let id = self.ctx.item_id("rs", index);
            self.emit(
                out,
                "response.reasoning_summary_text.delta",
                json!({
                "item_id": id, "output_index": index, "summary_index": 0, "delta": text}),
            );
        }
    }

    fn on_text(&mut self, text: &str, refusal: &str, out: &mut Vec<Bytes>) {
        let index = match self.open {
            Some(Open::Message(i)) => i,
            _ => self.open(
                OutputItem::Message {
                    text: String::new(),
                    refusal: String::new(),
                },
                out,
            ),
        };
        if let OutputItem::Message {
            text: t,
            refusal: r,
        } = &mut self.answer.items[index]
        {
            t.push_str(text);
            r.push_str(refusal);
        }
        let id = self.ctx.item_id("msg", index);
        if !text.is_empty() {
            self.emit(
                out,
                "response.output_text.delta",
                json!({
                "item_id": id, "output_index": index, "content_index": 0, "delta": text,
                "logprobs": []}),
            );
        }
    }

    fn on_call(&mut self, call: &Value, out: &mut Vec<Bytes>) {
        let chat_index = call["index"].as_u64().unwrap_or(0);
        let fragment = call["function"]["arguments"].as_str().unwrap_or("");
        let index = match self.calls.iter().find(|(c, _)| *c == chat_index) {
            Some((_, i)) => *i,
            None => {
                let item = OutputItem::Call {
                    call_id: call["id"].as_str().unwrap_or("").to_string(),
                    flat: call["function"]["name"].as_str().unwrap_or("").to_string(),
                    arguments: String::new(),
                };
                let i = self.open(item, out);
                self.open = Some(Open::Call(i, chat_index));
                self.calls.push((chat_index, i));
                i
            }
        };
        if let OutputItem::Call { arguments, .. } = &mut self.answer.items[index] {
            arguments.push_str(fragment);
        }
        let custom = self.item_json(index, "in_progress")["type"] == "custom_tool_call";
        if !fragment.is_empty() && !custom && self.open == Some(Open::Call(index, chat_index)) {
            let id = self.ctx.item_id("fc", index);
            self.emit(
                out,
                "response.function_call_arguments.delta",
                json!({
                "item_id": id, "output_index": index, "delta": fragment}),
            );
        }
    }

    fn finish(&mut self, out: &mut Vec<Bytes>) {
        self.close(out);
        let response = response_object(&self.ctx, &self.answer, None);
        let kind = if response["status"] == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.emit(out, kind, json!({"response": response}));
        self.completed = Some(response);
        self.ended = true;
    }

    fn fail(&mut self, message: &str, out: &mut Vec<Bytes>) {
        let mut base = response_object(&self.ctx, &self.answer, Some("in_progress"));
        base["usage"] = self.answer.responses_usage();
        let usage = (!base["usage"].is_null()).then(|| base["usage"].to_string());
        let data = failed_event(
            Some(&base.to_string()),
            &self.ctx.id,
            &self.answer.model,
            message,
            usage,
            self.sequence,
        );
        self.sequence += 1;
        out.push(sse_frame("response.failed", &data));
        self.ended = true;
    }
}

/// Merges streamed `reasoning_details` fragments into whole entries (by `index`): text appended,
/// signature and data taken when they arrive.
fn merge_details(into: &mut Vec<Value>, fragments: &[Value]) {
    for f in fragments {
        let existing = into
            .iter_mut()
            .find(|d| d["index"] == f["index"] && d["type"] == f["type"]);
        match existing {
            None => into.push(f.clone()),
            Some(d) => {
                if let Some(t) = f["text"].as_str() {
                    let joined = format!("{}{t}", d["text"].as_str().unwrap_or(""));
                    d["text"] = json!(joined);
                }
                for k in ["signature", "data"] {
                    if f[k].as_str().is_some_and(|s| !s.is_empty()) {
                        d[k] = f[k].clone();
                    }
                }
            }
        }
    }
}

impl PayloadTranslator for Stream {
    fn on_payload(&mut self, payload: &str) -> Vec<Bytes> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        if payload == "[DONE]" {
            if !self.started {
                self.start(&Value::Null, &mut out);
            }
            self.finish(&mut out);
            return out;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(payload) else {
            return out;
        };
        if !self.started {
            self.start(&chunk, &mut out);
        }
        if let Some(err) = chunk.get("error").filter(|e| !e.is_null()) {
            let message = err["message"].as_str().unwrap_or("The upstream failed");
            self.fail(message, &mut out);
            return out;
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            let raw = serde_json::value::to_raw_value(usage).expect("a value serialises");
            self.answer.usage = priced_usage(&raw);
        }
        if let Some(p) = chunk.get("provider").filter(|p| !p.is_null()) {
            self.answer.provider = Some(p.clone());
        }
        let Some(choice) = chunk["choices"].get(0) else {
            return out;
        };
        let delta = &choice["delta"];
        let reasoning = delta["reasoning"]
            .as_str()
            .or(delta["reasoning_content"].as_str())
            .unwrap_or("");
        let details = delta["reasoning_details"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !reasoning.is_empty() || !details.is_empty() {
            self.on_reasoning(reasoning, &details, &mut out);
        }
        let text = delta["content"].as_str().unwrap_or("");
        let refusal = delta["refusal"].as_str().unwrap_or("");
        if !text.is_empty() || !refusal.is_empty() {
            self.on_text(text, refusal, &mut out);
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            self.on_call(call, &mut out);
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            self.answer.finish_reason = Some(f.to_string());
        }
        out
    }

    fn ended(&self) -> bool {
        self.ended
    }

    fn on_cut(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        if !self.ended {
            self.fail("The stream ended unexpectedly", &mut out);
        }
        out
    }
}
