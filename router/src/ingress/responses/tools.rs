//! Responses tools in the chat view, and the way back. Pure.
//!
//! - `function` tools become chat function tools as they are.
//! - `custom` (freeform) tools become function tools taking one string, `{"input": "..."}`; the
//!   description says the input is free-form text and, for a grammar format, quotes the grammar.
//!   A call of one comes back as a `custom_tool_call` whose `input` is that string.
//! - `namespace` tools are flattened: each inner tool becomes `<namespace>__<name>`. A call of
//!   one comes back under its own name with its `namespace` (Codex dispatches on both).
//! - Built-in tools (`web_search`, `file_search`, `tool_search`, `code_interpreter`, ...) have no
//!   chat equivalent: they are dropped, and the caller says so (a response header and a log line),
//!   unless the request asks for strictness.

use serde_json::{Value, json};

/// Separator between a namespace and a tool name in a flattened name.
pub const NAMESPACE_SEPARATOR: &str = "__";

/// One tool as the chat view names it, and what it is in the Responses API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolEntry {
    /// The chat view's function name.
    pub flat: String,
    /// The tool's own name.
    pub name: String,
    /// Its namespace, if it was declared in one.
    pub namespace: Option<String>,
    /// A freeform (`custom`) tool: called with `{"input": "<text>"}`.
    pub custom: bool,
}

/// The tools of one request: how each maps to the chat view and back.
#[derive(Clone, Debug, Default)]
pub struct ToolMap {
    entries: Vec<ToolEntry>,
    /// The chat view's `tools`.
    pub chat_tools: Vec<Value>,
    /// The types of built-in tools that were left out.
    pub dropped: Vec<String>,
}

impl ToolMap {
    /// Adds every tool of a Responses `tools` list (top-level, or an `additional_tools` item's).
    pub fn add_all(&mut self, tools: &[Value]) {
        for tool in tools {
            self.add(tool, None);
        }
    }

    fn add(&mut self, tool: &Value, namespace: Option<&str>) {
        let kind = tool["type"].as_str().unwrap_or("");
        let name = tool["name"].as_str().unwrap_or("");
        match kind {
            "function" | "custom" if !name.is_empty() => {
                let flat = match namespace {
                    Some(ns) => format!("{ns}{NAMESPACE_SEPARATOR}{name}"),
                    None => name.to_string(),
                };
                if self.entries.iter().any(|e| e.flat == flat) {
                    return;
                }
                let custom = kind == "custom";
                self.chat_tools.push(chat_tool(tool, &flat, custom));
                self.entries.push(ToolEntry {
                    flat,
                    name: name.to_string(),
                    namespace: namespace.map(str::to_string),
                    custom,
                });
            }
            "namespace" if !name.is_empty() => {
                for inner in tool["tools"].as_array().into_iter().flatten() {
                    self.add(inner, Some(name));
                }
            }
            other => {
                let other = if other.is_empty() { "unknown" } else { other };
                if !self.dropped.iter().any(|d| d == other) {
                    self.dropped.push(other.to_string());
                }
            }
        }
    }

    /// The entry of a chat view function name.
    pub fn by_flat(&self, flat: &str) -> Option<&ToolEntry> {
        self.entries.iter().find(|e| e.flat == flat)
    }

    /// The chat view name of a call of `name` in `namespace` from the client's history. A call
    /// without a namespace names a top-level tool, else the one namespaced tool of that name;
    /// an unknown tool keeps its (flattened) name.
    pub fn flat_name(&self, namespace: Option<&str>, name: &str) -> String {
        if let Some(ns) = namespace {
            return format!("{ns}{NAMESPACE_SEPARATOR}{name}");
        }
        if self
            .entries
            .iter()
            .any(|e| e.namespace.is_none() && e.name == name)
        {
            return name.to_string();
        }
        let mut namespaced = self.entries.iter().filter(|e| e.name == name);
        match (namespaced.next(), namespaced.next()) {
            (Some(only), None) => only.flat.clone(),
            _ => name.to_string(),
        }
    }

    /// The chat view's `tool_choice` for a Responses `tool_choice`.
    pub fn tool_choice(&self, choice: &Value) -> Option<Value> {
        match choice {
            Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => {
                Some(choice.clone())
            }
            Value::Object(o) => {
                let kind = o.get("type").and_then(Value::as_str).unwrap_or("");
                let name = o.get("name").and_then(Value::as_str);
                match (kind, name) {
                    ("function" | "custom", Some(name)) => {
                        let ns = o.get("namespace").and_then(Value::as_str);
                        Some(json!({"type": "function",
                                    "function": {"name": self.flat_name(ns, name)}}))
                    }
                    ("allowed_tools", _) if o.get("mode") == Some(&json!("required")) => {
                        Some(json!("required"))
                    }
                    _ => Some(json!("auto")),
                }
            }
            _ => None,
        }
    }
}

/// The chat view's function tool for a Responses `function` or `custom` tool.
fn chat_tool(tool: &Value, flat: &str, custom: bool) -> Value {
    let mut function = json!({"name": flat});
    let description = tool["description"].as_str().unwrap_or("");
    if custom {
        let mut text = description.to_string();
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str("Call this tool with its whole input as the string argument `input`.");
        if tool["format"]["type"] == "grammar" {
            text.push_str(&format!(
                " The input must match this {} grammar:\n{}",
                tool["format"]["syntax"].as_str().unwrap_or(""),
                tool["format"]["definition"].as_str().unwrap_or("")
            ));
        }
        function["description"] = json!(text);
        function["parameters"] = json!({
            "type": "object",
            "properties": {"input": {"type": "string", "description": "The tool's input, as free-form text"}},
            "required": ["input"],
            "additionalProperties": false
        });
    } else {
        if !description.is_empty() {
            function["description"] = json!(description);
        }
        if let Some(p) = tool.get("parameters").filter(|p| !p.is_null()) {
            function["parameters"] = p.clone();
        }
        if let Some(s) = tool.get("strict").filter(|s| s.is_boolean()) {
            function["strict"] = s.clone();
        }
    }
    json!({"type": "function", "function": function})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> ToolMap {
        let mut m = ToolMap::default();
        m.add_all(&[
            json!({"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": true}),
            json!({"type": "namespace", "name": "functions", "description": "", "tools": [
                {"type": "custom", "name": "exec", "description": "Run JS",
                 "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}},
                {"type": "function", "name": "wait", "parameters": {"type": "object"}}
            ]}),
            json!({"type": "web_search", "external_web_access": false}),
            json!({"type": "tool_search", "execution": "client"}),
        ]);
        m
    }

    #[test]
    fn namespaces_flatten_custom_tools_take_a_string_and_built_ins_are_dropped() {
        let m = map();
        let names: Vec<&str> = m
            .chat_tools
            .iter()
            .map(|t| t["function"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["get_weather", "functions__exec", "functions__wait"]);
        assert_eq!(m.chat_tools[0]["function"]["strict"], true);
        let exec = &m.chat_tools[1]["function"];
        assert_eq!(exec["parameters"]["required"], json!(["input"]));
        assert!(
            exec["description"]
                .as_str()
                .unwrap()
                .ends_with("lark grammar:\nstart: /.+/")
        );
        assert_eq!(m.dropped, ["web_search", "tool_search"]);
        let e = m.by_flat("functions__exec").unwrap();
        assert_eq!(
            (e.name.as_str(), e.namespace.as_deref(), e.custom),
            ("exec", Some("functions"), true)
        );
    }

    #[test]
    fn history_names_resolve_with_or_without_their_namespace() {
        let m = map();
        assert_eq!(m.flat_name(Some("functions"), "exec"), "functions__exec");
        assert_eq!(m.flat_name(None, "exec"), "functions__exec");
        assert_eq!(m.flat_name(None, "get_weather"), "get_weather");
        assert_eq!(m.flat_name(None, "nope"), "nope");
        assert_eq!(
            m.tool_choice(&json!({"type": "custom", "name": "exec"})),
            Some(json!({"type": "function", "function": {"name": "functions__exec"}}))
        );
        assert_eq!(
            m.tool_choice(&json!({"type": "web_search"})),
            Some(json!("auto"))
        );
    }
}
