//! Resource quantities (`100m`, `1.5Gi`, `2e3`) as kube/src/quantity.rs parses them from
//! manifests. A parsed quantity must print back to a string that parses to the same value.
#![no_main]

use corral_kube::quantity::Quantity;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(q) = Quantity::parse(text) else {
        return;
    };
    let _ = (q.value(), q.milli_value(), q.is_zero());
    let printed = q.to_string();
    let again = Quantity::parse(&printed)
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which does not parse: {e}"));
    assert_eq!(again, q, "{text:?} printed as {printed:?}");
});
