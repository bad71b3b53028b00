//! Label selectors (`a in (b,c),!d`, `tier!=x`, `n>3`) as kube/src/selector.rs parses them for
//! `-l`. A parsed selector must print back to a string that parses to the same selector, and
//! matching must not panic.
#![no_main]

use std::collections::BTreeMap;

use corral_kube::selector::Selector;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(selector) = Selector::parse(text) else {
        return;
    };
    let printed = selector.to_string();
    let again = Selector::parse(&printed)
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which does not parse: {e}"));
    assert_eq!(again, selector, "{text:?} printed as {printed:?}");
    let labels: BTreeMap<String, String> = selector
        .requirements
        .iter()
        .flat_map(|r| r.values.iter().map(move |v| (r.key.clone(), v.clone())))
        .collect();
    let _ = selector.matches(&labels);
    let _ = selector.matches(&BTreeMap::new());
});
