//! Cost of a request: a pricing table of USD per token (input, output, cache read, cache write)
//! keyed by provider and model. The defaults ship with asbru (`filters/data/pricing.json`);
//! `governance.pricing_overrides` win over them. Costs are integer micro-dollars, rounded up.

use std::collections::HashMap;

use asbru_config::governance::{ModelPrice, PricingOverride};
use serde::Deserialize;

/// The bundled default prices.
const BUNDLED: &str = include_str!("../data/pricing.json");

/// Token counts to price. `input` counts every prompt token once, cache reads and writes
/// included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// All prompt tokens.
    pub input: u64,
    /// Generated tokens.
    pub output: u64,
    /// Prompt tokens read from a cache (part of `input`).
    pub cache_read: u64,
    /// Prompt tokens written to a cache (part of `input`).
    pub cache_write: u64,
    /// Reasoning tokens (part of `output`; reported, never priced apart).
    pub reasoning: u64,
    /// Billed units besides tokens: seconds of audio a transcription reports.
    pub units: u64,
}

impl TokenUsage {
    /// Input plus output.
    pub fn total(&self) -> u64 {
        self.input.saturating_add(self.output)
    }
}

/// A model's prices, in USD per token.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Price {
    /// Per prompt token.
    pub input: f64,
    /// Per generated token.
    pub output: f64,
    /// Per prompt token read from a cache.
    pub cache_read: f64,
    /// Per prompt token written to a cache.
    pub cache_write: f64,
    /// Per generated image, when the model is billed per image.
    pub per_image: Option<f64>,
    /// Per input character, when the model is billed per character.
    pub per_character: Option<f64>,
    /// Per second of input audio, when the model is billed per second.
    pub per_second: Option<f64>,
    /// The unit price this request is billed at ([`Price::for_unit`]); 0 for token billing.
    pub per_unit: f64,
}

/// What a request billed per unit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Generated images.
    Image,
    /// Input characters.
    Character,
    /// Seconds of input audio.
    Second,
}

impl Price {
    /// The cost of `usage`, in micro-dollars, rounded up.
    pub fn cost_micros(&self, usage: &TokenUsage) -> i64 {
        let cached = usage.cache_read.saturating_add(usage.cache_write);
        let plain_input = usage.input.saturating_sub(cached);
        let dollars = plain_input as f64 * self.input
            + usage.cache_read as f64 * self.cache_read
            + usage.cache_write as f64 * self.cache_write
            + usage.output as f64 * self.output
            + usage.units as f64 * self.per_unit;
        to_micros(dollars)
    }

    /// This price billing `unit` (its per-unit price set as [`Price::per_unit`]); `None` when
    /// the model has no price for that unit.
    pub fn for_unit(&self, unit: Unit) -> Option<Price> {
        let per_unit = match unit {
            Unit::Image => self.per_image,
            Unit::Character => self.per_character,
            Unit::Second => self.per_second,
        }?;
        Some(Price { per_unit, ..*self })
    }

    /// Whether the model bills tokens (its reply then reports them).
    pub fn bills_tokens(&self) -> bool {
        self.input > 0.0 || self.output > 0.0
    }

    /// The most a request can cost: every one of `input_tokens` at the full input price, plus
    /// `max_output_tokens` at the output price.
    pub fn max_cost_micros(&self, input_tokens: u64, max_output_tokens: u64) -> i64 {
        to_micros(input_tokens as f64 * self.input + max_output_tokens as f64 * self.output)
    }

    fn from_fields(
        input: Option<f64>,
        output: Option<f64>,
        cache_read: Option<f64>,
        cache_write: Option<f64>,
    ) -> Price {
        let input = input.unwrap_or(0.0).max(0.0);
        Price {
            input,
            output: output.unwrap_or(0.0).max(0.0),
            // A provider without a cache price charges cached tokens as plain input.
            cache_read: cache_read.map(|p| p.max(0.0)).unwrap_or(input),
            cache_write: cache_write.map(|p| p.max(0.0)).unwrap_or(input),
            per_image: None,
            per_character: None,
            per_second: None,
            per_unit: 0.0,
        }
    }

    /// The per-unit prices of a price row (non-negative).
    fn with_units(self, image: Option<f64>, character: Option<f64>, second: Option<f64>) -> Price {
        Price {
            per_image: image.map(|p| p.max(0.0)),
            per_character: character.map(|p| p.max(0.0)),
            per_second: second.map(|p| p.max(0.0)),
            ..self
        }
    }
}

/// USD to micro-dollars, rounded up so that reservations and charges never undercount.
pub fn to_micros(dollars: f64) -> i64 {
    if !dollars.is_finite() || dollars <= 0.0 {
        return 0;
    }
    // Shave float noise (3 × 0.1 µ$ is 0.30000000000000004) before rounding up.
    let micros = dollars * 1e6;
    let rounded = micros.round();
    let whole = if (micros - rounded).abs() < 1e-6 {
        rounded
    } else {
        micros.ceil()
    };
    if whole >= i64::MAX as f64 {
        i64::MAX
    } else {
        whole as i64
    }
}

/// Micro-dollars to USD, for messages.
pub fn to_dollars(micros: i64) -> f64 {
    micros as f64 / 1e6
}

#[derive(Deserialize)]
struct BundledTable {
    models: Vec<ModelPrice>,
}

/// Prices by provider and model.
#[derive(Debug, Clone, Default)]
pub struct PricingTable {
    prices: HashMap<String, HashMap<String, Price>>,
}

impl PricingTable {
    /// The bundled defaults.
    pub fn bundled() -> PricingTable {
        let mut table = PricingTable::default();
        match serde_json::from_str::<BundledTable>(BUNDLED) {
            Ok(bundled) => {
                for row in &bundled.models {
                    table.insert_row(row);
                }
            }
            // The file is part of the build and checked by a test; this cannot happen in a release.
            Err(e) => tracing::error!("bundled pricing table is unreadable: {e}"),
        }
        table
    }

    /// The bundled defaults, then `rows` (a synced datasheet), then `overrides`: later wins.
    pub fn build(rows: &[ModelPrice], overrides: &[PricingOverride]) -> PricingTable {
        let mut table = PricingTable::bundled();
        for row in rows {
            table.insert_row(row);
        }
        for o in overrides {
            table.insert(
                &o.provider,
                &o.model,
                Price::from_fields(
                    o.input_cost_per_token,
                    o.output_cost_per_token,
                    o.cache_read_input_token_cost,
                    o.cache_creation_input_token_cost,
                )
                .with_units(
                    o.output_cost_per_image,
                    o.input_cost_per_character,
                    o.input_cost_per_second,
                ),
            );
        }
        table
    }

    fn insert_row(&mut self, row: &ModelPrice) {
        let price = Price::from_fields(
            row.input_cost_per_token,
            row.output_cost_per_token,
            row.cache_read_input_token_cost,
            row.cache_creation_input_token_cost,
        )
        .with_units(
            row.output_cost_per_image,
            row.input_cost_per_character,
            row.input_cost_per_second,
        );
        self.insert(&row.provider, &row.model, price);
    }

    fn insert(&mut self, provider: &str, model: &str, price: Price) {
        self.prices
            .entry(provider.to_string())
            .or_default()
            .insert(model.to_string(), price);
    }

    /// The price of `model` at `provider`: the exact name first, then the name without a date
    /// suffix (`gpt-4o-2024-08-06` → `gpt-4o`); Azure OpenAI uses OpenAI's list prices.
    /// `None` when the model is not priced.
    pub fn lookup(&self, provider: &str, model: &str) -> Option<Price> {
        let families: &[&str] = match provider {
            "azure" => &["azure", "openai"],
            _ => &[provider],
        };
        for family in families {
            let Some(models) = self.prices.get(*family) else {
                continue;
            };
            if let Some(price) = models.get(model) {
                return Some(*price);
            }
            if let Some(base) = strip_date_suffix(model)
                && let Some(price) = models.get(base)
            {
                return Some(*price);
            }
            // A Bedrock cross-region inference profile (`us.`, `eu.`, `apac.`, `global.`) is
            // priced as the model it routes to.
            if *family == "bedrock"
                && let Some((_, base)) = model.split_once('.')
                && base.contains('.')
                && let Some(price) = models.get(base)
            {
                return Some(*price);
            }
        }
        None
    }

    /// The models priced for `provider` (Azure included under OpenAI's list), by name.
    pub fn models_of<'a>(&'a self, provider: &str) -> impl Iterator<Item = &'a String> + 'a {
        let families: &[&str] = match provider {
            "azure" => &["azure", "openai"],
            _ => &[],
        };
        let own = self.prices.get(provider);
        let extra: Vec<&'a HashMap<String, Price>> = families
            .iter()
            .filter(|f| **f != provider)
            .filter_map(|f| self.prices.get(*f))
            .collect();
        own.into_iter().chain(extra).flat_map(|m| m.keys())
    }

    /// How many models are priced.
    pub fn len(&self) -> usize {
        self.prices.values().map(HashMap::len).sum()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `name-2024-08-06` or `name-20241022` → `name`.
pub fn strip_date_suffix(model: &str) -> Option<&str> {
    let (base, tail) = model.rsplit_once('-')?;
    if tail.len() == 8 && tail.bytes().all(|b| b.is_ascii_digit()) {
        return Some(base);
    }
    // YYYY-MM-DD: three dash-separated numeric parts.
    let mut parts = model.rsplitn(4, '-');
    let (day, month, year, base) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let numeric = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    (numeric(year, 4) && numeric(month, 2) && numeric(day, 2)).then_some(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_table_loads_and_prices_common_models() {
        let table = PricingTable::bundled();
        assert!(table.len() > 50, "{}", table.len());
        for (provider, model) in [
            ("openai", "gpt-4o"),
            ("anthropic", "claude-sonnet-4-5"),
            ("gemini", "gemini-2.5-flash"),
            ("mistral", "mistral-large-latest"),
            ("groq", "llama-3.3-70b-versatile"),
        ] {
            let price = table.lookup(provider, model).expect(model);
            assert!(price.input > 0.0 && price.output > 0.0, "{model}");
        }
        let gpt4o = table.lookup("openai", "gpt-4o").expect("gpt-4o");
        assert_eq!(to_micros(gpt4o.input * 1_000_000.0), 2_500_000);
    }

    #[test]
    fn lookup_normalises_dates_and_azure() {
        let table = PricingTable::bundled();
        let base = table.lookup("openai", "gpt-4o").expect("base");
        assert_eq!(table.lookup("openai", "gpt-4o-2024-08-06"), Some(base));
        assert_eq!(table.lookup("azure", "gpt-4o"), Some(base));
        assert!(table.lookup("anthropic", "claude-3-5-haiku-20241022").is_some());
        assert_eq!(table.lookup("openai", "no-such-model"), None);
        assert_eq!(table.lookup("nowhere", "gpt-4o"), None);
    }

    #[test]
    fn overrides_win() {
        let table = PricingTable::build(
            &[],
            &[PricingOverride {
                provider: "openai".into(),
                model: "gpt-4o".into(),
                input_cost_per_token: Some(0.000001),
                output_cost_per_token: Some(0.000002),
                ..Default::default()
            }],
        );
        let price = table.lookup("openai", "gpt-4o").expect("price");
        assert_eq!(price.input, 0.000001);
        assert_eq!(price.cache_read, 0.000001, "cache price defaults to input price");
    }

    #[test]
    fn bedrock_profiles_are_priced_as_their_model() {
        let table = PricingTable::bundled();
        let model = table.lookup("bedrock", "anthropic.claude-3-haiku-20240307-v1:0");
        assert!(model.is_some());
        assert_eq!(
            table.lookup("bedrock", "us.anthropic.claude-3-haiku-20240307-v1:0"),
            model
        );
        assert!(table.lookup("bedrock", "us.unknown").is_none());
        assert!(table.lookup("cohere", "command-r").is_some());
    }

    #[test]
    fn unit_prices_bill_images_characters_and_seconds() {
        let table = PricingTable::bundled();
        let dalle = table.lookup("openai", "dall-e-3").expect("dall-e-3 is priced");
        let per_image = dalle.for_unit(Unit::Image).expect("per image");
        let usage = TokenUsage {
            units: 2,
            ..TokenUsage::default()
        };
        assert_eq!(per_image.cost_micros(&usage), 80_000, "two images at $0.04");
        assert!(dalle.for_unit(Unit::Second).is_none());
        let whisper = table
            .lookup("openai", "whisper-1")
            .and_then(|p| p.for_unit(Unit::Second));
        let minute = TokenUsage {
            units: 60,
            ..TokenUsage::default()
        };
        assert_eq!(whisper.map(|p| p.cost_micros(&minute)), Some(6_000), "$0.006 a minute");
        let tts = table
            .lookup("openai", "tts-1")
            .and_then(|p| p.for_unit(Unit::Character));
        let thousand = TokenUsage {
            units: 1_000,
            ..TokenUsage::default()
        };
        assert_eq!(
            tts.map(|p| p.cost_micros(&thousand)),
            Some(15_000),
            "$15 per million characters"
        );
        assert!(table.lookup("openai", "gpt-image-1").is_some_and(|p| p.bills_tokens()));
        assert_eq!(
            table
                .lookup("openai", "omni-moderation-latest")
                .map(|p| p.cost_micros(&minute)),
            Some(0)
        );
    }

    #[test]
    fn cost_counts_cached_tokens_at_their_price() {
        let price = Price {
            input: 3e-6,
            output: 15e-6,
            cache_read: 0.3e-6,
            cache_write: 3.75e-6,
            ..Price::default()
        };
        let usage = TokenUsage {
            input: 1_000 + 10_000 + 2_000,
            output: 500,
            cache_read: 10_000,
            cache_write: 2_000,
            reasoning: 0,
            units: 0,
        };
        // 1000*3 + 10000*0.3 + 2000*3.75 + 500*15 = 3000 + 3000 + 7500 + 7500 µ$
        assert_eq!(price.cost_micros(&usage), 21_000);
        assert_eq!(price.max_cost_micros(100, 10), 300 + 150);
        assert_eq!(to_micros(0.1 + 0.2), 300_000);
        assert_eq!(to_micros(1e-7), 1, "fractions of a micro-dollar round up");
        assert_eq!(to_micros(-1.0), 0);
    }
}
