//! The config loader (YAML and JSON, Bifrost's schema): any text loads or is refused with
//! located problems, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(loaded) = asbru_config::load_str(text, "fuzz.yaml") {
        let _ = asbru_config::validate(&loaded.config);
    }
});
