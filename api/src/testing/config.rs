//! Snapshot config values for tests: `ApiKeyConfig::test()`, `BudgetConfig::test()`.

use rust_decimal::Decimal;

use crate::snapshot::{ApiKeyConfig, BudgetAction, BudgetConfig, BudgetWindow, FailureMode};

impl ApiKeyConfig {
    /// Key `default/k`: no team, no hash or prefix, any model, no limits, no provider policy,
    /// never expires, enabled.
    pub fn test() -> ApiKeyConfig {
        ApiKeyConfig {
            namespace: "default".into(),
            name: "k".into(),
            team: None,
            key_hash: String::new(),
            prefix: String::new(),
            allowed_models: vec![],
            denied_models: vec![],
            rate_limits: Default::default(),
            provider_policy: Default::default(),
            expires_at: None,
            disabled: false,
            fit_min_tokens: None,
            record_content: false,
            cache: None,
            subjects: vec![],
        }
    }
}

impl BudgetConfig {
    /// Budget `default/b`: $5 a month over no key and every model, no soft limit, blocking and
    /// failing closed.
    pub fn test() -> BudgetConfig {
        BudgetConfig {
            namespace: "default".into(),
            name: "b".into(),
            limit_usd: Decimal::from(5),
            window: BudgetWindow::Monthly,
            api_keys: Default::default(),
            models: vec![],
            soft_limit_percent: None,
            action: BudgetAction::Block,
            failure_mode: FailureMode::Closed,
            fit_min_tokens: None,
        }
    }
}
