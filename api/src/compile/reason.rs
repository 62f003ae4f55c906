//! The condition reasons [`compile`](super::compile) reports, as written to
//! `status.conditions[].reason`.

/// Ready: the object is in the snapshot as written.
pub const COMPILED: &str = "Compiled";
/// Ready: a ModelRoute serves with only some of its targets.
pub const SOME_TARGETS_UNRESOLVED: &str = "SomeTargetsUnresolved";
/// Ready: a Budget names ApiKeys that are missing or not ready.
pub const SOME_KEYS_UNRESOLVED: &str = "SomeKeysUnresolved";

/// The same kind/namespace/name was given more than once.
pub const DUPLICATE_OBJECT: &str = "DuplicateObject";
/// A referenced Secret does not exist.
pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
/// A referenced Secret exists but lacks the key.
pub const SECRET_KEY_NOT_FOUND: &str = "SecretKeyNotFound";
/// A referenced Secret value is empty, not UTF-8, or unusable as a credential.
pub const INVALID_SECRET: &str = "InvalidSecret";
/// A referenced Secret was given more than once.
pub const DUPLICATE_SECRET: &str = "DuplicateSecret";

/// Provider: `credentials` is malformed or not allowed for the type.
pub const INVALID_CREDENTIALS: &str = "InvalidCredentials";
/// Provider: the type needs credentials and none are set.
pub const MISSING_CREDENTIALS: &str = "MissingCredentials";
/// Provider: the type has no default endpoint and `baseURL` is unset.
pub const MISSING_BASE_URL: &str = "MissingBaseURL";
/// Provider: `baseURL` is not a usable http(s) URL.
pub const INVALID_BASE_URL: &str = "InvalidBaseURL";
/// Provider: `mock` is set on a non-mock type or holds a bad value.
pub const INVALID_MOCK: &str = "InvalidMock";
/// Provider: `azure`, `bedrock` or `vertex` is set on another type, missing where required,
/// or holds a bad value.
pub const INVALID_PROVIDER_SETTINGS: &str = "InvalidProviderSettings";
/// Provider: a header name or value is invalid or reserved.
pub const INVALID_HEADER: &str = "InvalidHeader";
/// Provider: `models` is empty.
pub const NO_MODELS: &str = "NoModels";
/// Provider: a model entry is invalid (name, limits, duplicates).
pub const INVALID_MODELS: &str = "InvalidModels";
/// Provider: a price is not a non-negative decimal string.
pub const INVALID_PRICE: &str = "InvalidPrice";
/// Provider: a timeout is not a positive duration.
pub const INVALID_TIMEOUT: &str = "InvalidTimeout";
/// Provider: `maxConcurrentRequests` is zero.
pub const INVALID_CONCURRENCY_LIMIT: &str = "InvalidConcurrencyLimit";

/// ModelRoute: the public model name is empty or has whitespace.
pub const INVALID_MODEL: &str = "InvalidModel";
/// ModelRoute: `targets` is empty.
pub const NO_TARGETS: &str = "NoTargets";
/// ModelRoute: a target is invalid in itself.
pub const INVALID_TARGET: &str = "InvalidTarget";
/// ModelRoute: a target names a Provider that does not exist.
pub const UNKNOWN_PROVIDER: &str = "UnknownProvider";
/// ModelRoute: a target names a Provider that was rejected.
pub const PROVIDER_NOT_READY: &str = "ProviderNotReady";
/// ModelRoute: a target names a model its Provider does not offer.
pub const UNKNOWN_PROVIDER_MODEL: &str = "UnknownProviderModel";
/// ModelRoute: a fallback model is empty, repeated, or the route itself.
pub const INVALID_FALLBACK: &str = "InvalidFallback";
/// ModelRoute: `retries` or `timeout` is out of range or not a duration.
pub const INVALID_RETRIES: &str = "InvalidRetries";
/// ModelRoute: an older ModelRoute serves the same public model name.
pub const DUPLICATE_MODEL: &str = "DuplicateModel";

/// ApiKey: the key is shorter than 16 characters.
pub const WEAK_KEY: &str = "WeakKey";
/// ApiKey: the key contains whitespace or characters clients cannot send.
pub const INVALID_KEY: &str = "InvalidKey";
/// ApiKey or Budget: a model glob is invalid.
pub const INVALID_GLOB: &str = "InvalidGlob";
/// ApiKey: `expiresAt` is not an RFC 3339 timestamp.
pub const INVALID_EXPIRY: &str = "InvalidExpiry";
/// ApiKey: a rate limit is zero.
pub const INVALID_RATE_LIMIT: &str = "InvalidRateLimit";
/// ApiKey: another ApiKey holds the same key.
pub const DUPLICATE_KEY: &str = "DuplicateKey";
/// ApiKey: a subject is invalid in itself (neither or both kinds, empty names, an issuer that
/// is not a URL, an issuer alone, listed twice).
pub const INVALID_SUBJECT: &str = "InvalidSubject";
/// ApiKey: another ApiKey grants a subject naming the same caller.
pub const OVERLAPPING_SUBJECTS: &str = "OverlappingSubjects";

/// Budget: `limitUSD` is not a non-negative decimal string.
pub const INVALID_LIMIT: &str = "InvalidLimit";
/// Budget: `softLimitPercent` is outside 1..=100.
pub const INVALID_SOFT_LIMIT: &str = "InvalidSoftLimit";
/// Budget or ApiKey: `fitMaxTokens.minTokens` is 0.
pub const INVALID_FIT: &str = "InvalidFitMaxTokens";
/// ModelRoute or ApiKey: the `cache` block is invalid (a bad `ttl`, `threshold` or
/// `maxEntryBytes`, or `mode: semantic` without `semantic`).
pub const INVALID_CACHE: &str = "InvalidCache";
