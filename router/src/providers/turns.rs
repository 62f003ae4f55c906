//! The fold every translating adapter starts from: OpenAI's flat message list into a system
//! prompt and alternating user/assistant turns. Pure.
//!
//! Anthropic Messages, Bedrock Converse and Gemini `generateContent` all take the system prompt
//! apart from the conversation and want each turn to be one role's run of content blocks, so the
//! fold is the same for the three; only the blocks differ ([`Blocks`], one implementation per
//! vendor):
//! - `system` and `developer` messages go to the system prompt, wherever they stand;
//! - `user` messages, and `tool` messages (a tool result is part of the user's next turn), make user
//!   turns; `assistant` messages make assistant turns;
//! - consecutive messages of one role merge into one turn, and a message without blocks (empty
//!   text, only parts the vendor cannot take) leaves no turn;
//! - any other role is a 400.

use super::{
    AttemptError,
    openai_wire::{Content, Message, client_error},
};

/// Who speaks a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The user, with the results of the tools the assistant called.
    User,
    /// The model.
    Assistant,
}

/// One role's consecutive blocks.
#[derive(Debug, PartialEq)]
pub struct Turn<B> {
    /// Who speaks.
    pub role: Role,
    /// What is said, never empty.
    pub blocks: Vec<B>,
}

/// A conversation folded into a vendor's blocks.
#[derive(Debug, PartialEq)]
pub struct Conversation<B> {
    /// The blocks of every `system` and `developer` message, in order.
    pub system: Vec<B>,
    /// The turns, no two consecutive ones of the same role.
    pub turns: Vec<Turn<B>>,
}

impl<B> Conversation<B> {
    fn push(&mut self, role: Role, blocks: Vec<B>) {
        if blocks.is_empty() {
            return;
        }
        match self.turns.last_mut() {
            Some(last) if last.role == role => last.blocks.extend(blocks),
            _ => self.turns.push(Turn { role, blocks }),
        }
    }
}

/// How one vendor writes the blocks of a turn.
pub trait Blocks {
    /// The vendor's content block (Anthropic's `content` entry, Converse's `ContentBlock`,
    /// Gemini's `Part`).
    type Block;

    /// The blocks of a system, developer or user message's content.
    fn content(&self, content: Option<&Content>) -> Result<Vec<Self::Block>, AttemptError>;

    /// The blocks of an assistant message: its reasoning, content and tool calls.
    fn assistant(&self, message: &Message) -> Result<Vec<Self::Block>, AttemptError>;

    /// The block carrying a `tool` message's result.
    fn tool_result(&self, message: &Message) -> Result<Self::Block, AttemptError>;
}

/// Folds `messages` into a system prompt and alternating turns of `vendor`'s blocks.
pub fn fold<V: Blocks>(
    messages: &[Message],
    vendor: &V,
) -> Result<Conversation<V::Block>, AttemptError> {
    let mut out = Conversation {
        system: Vec::new(),
        turns: Vec::new(),
    };
    for m in messages {
        let (role, blocks) = match m.role.as_str() {
            "system" | "developer" => {
                out.system.extend(vendor.content(m.content.as_ref())?);
                continue;
            }
            "user" => (Role::User, vendor.content(m.content.as_ref())?),
            "assistant" => (Role::Assistant, vendor.assistant(m)?),
            "tool" => (Role::User, vec![vendor.tool_result(m)?]),
            other => return Err(client_error(format!("unsupported message role `{other}`"))),
        };
        out.push(role, blocks);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{json::RawObject, providers::openai_wire::ChatRequest};

    /// Blocks as text: content parts as-is, an assistant's tool calls as `call:<name>`, tool
    /// results as `result:<id>`.
    struct Text;

    impl Blocks for Text {
        type Block = String;

        fn content(&self, content: Option<&Content>) -> Result<Vec<String>, AttemptError> {
            Ok(content
                .map(|c| c.parts())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| p.text.filter(|t| !t.is_empty()))
                .collect())
        }

        fn assistant(&self, message: &Message) -> Result<Vec<String>, AttemptError> {
            let mut out = self.content(message.content.as_ref())?;
            out.extend(
                message
                    .tool_calls
                    .iter()
                    .map(|c| format!("call:{}", c.function.name)),
            );
            Ok(out)
        }

        fn tool_result(&self, message: &Message) -> Result<String, AttemptError> {
            Ok(format!(
                "result:{}",
                message.tool_call_id.as_deref().unwrap_or("")
            ))
        }
    }

    fn messages(json: &str) -> Vec<Message> {
        ChatRequest::parse(&RawObject::parse(json.as_bytes()).unwrap())
            .unwrap()
            .messages
    }

    fn turn(role: Role, blocks: &[&str]) -> Turn<String> {
        Turn {
            role,
            blocks: blocks.iter().map(|b| b.to_string()).collect(),
        }
    }

    #[test]
    fn system_is_pulled_out_and_roles_alternate() {
        let m = messages(
            r#"{"messages": [
                {"role": "system", "content": "s1"},
                {"role": "user", "content": "u1"},
                {"role": "developer", "content": [{"type": "text", "text": "d1"}]},
                {"role": "user", "content": [{"type": "text", "text": "u2"}, {"type": "text", "text": ""}]},
                {"role": "assistant", "content": "a1", "tool_calls": [
                    {"id": "c1", "function": {"name": "f", "arguments": "{}"}},
                    {"id": "c2", "function": {"name": "g", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "r1"},
                {"role": "tool", "tool_call_id": "c2", "content": "r2"},
                {"role": "user", "content": "u3"},
                {"role": "assistant", "content": ""},
                {"role": "user", "content": "u4"}
            ]}"#,
        );
        let c = fold(&m, &Text).unwrap();
        assert_eq!(c.system, ["s1", "d1"]);
        assert_eq!(
            c.turns,
            [
                turn(Role::User, &["u1", "u2"]),
                turn(Role::Assistant, &["a1", "call:f", "call:g"]),
                // The empty assistant message leaves no turn, so u3 and u4 are one.
                turn(Role::User, &["result:c1", "result:c2", "u3", "u4"]),
            ]
        );
    }

    #[test]
    fn an_unknown_role_is_a_client_error() {
        let m = messages(r#"{"messages": [{"role": "function", "content": "x"}]}"#);
        match fold(&m, &Text) {
            Err(AttemptError::Status { status, body, .. }) => {
                assert_eq!(status, 400);
                assert!(
                    body.contains("unsupported message role `function`"),
                    "{body}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
