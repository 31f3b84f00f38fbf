//! No input panics the parsers (issue 13, item 14): the plan loaders (TOML, JSON, Droidz),
//! duration parsing (through the plan fields that hold durations) and the executor template
//! splitter, on arbitrary bytes and on inputs shaped like the real thing.
//!
//! Each property runs 256 cases (well under a second each); `FORGE_SOAK=1` runs 10,000.

use forge_core::{Plan, PlanFormat, ProcessExecutor};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: if std::env::var("FORGE_SOAK").as_deref() == Ok("1") {
            10_000
        } else {
            256
        },
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Parses `text` in every form and validates whatever parses, as `forge plan` would.
fn load_everything(text: &str) {
    let _ = Plan::detect_format(text);
    for format in [PlanFormat::Toml, PlanFormat::Json, PlanFormat::Droidz] {
        if let Ok(plan) = Plan::parse_as(text, format)
            && let Ok(plan) = plan.validate()
        {
            let _ = plan.phases();
        }
    }
}

/// Text that looks like a duration: numbers (with dots, exponents, signs) and units.
fn duration_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        (
            "[0-9]{0,22}(\\.[0-9]{0,6})?([eE][+-]?[0-9]{1,3})?",
            prop_oneof![
                Just("h"),
                Just("m"),
                Just("min"),
                Just("s"),
                Just("ms"),
                Just("us"),
                Just("µs"),
                Just(""),
                Just(" "),
                Just("x"),
            ],
        ),
        0..4,
    )
    .prop_map(|parts| parts.into_iter().map(|(n, u)| format!("{n}{u}")).collect())
}

/// A number as TOML or JSON may spell it, including huge, tiny, negative and special ones.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f64>().prop_map(|f| format!("{f:e}")),
        any::<i64>().prop_map(|i| i.to_string()),
        Just("1e300".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("nan".to_owned()),
        Just("inf".to_owned()),
        Just("-0.0".to_owned()),
    ]
}

/// Field names of all three forms, plus near misses and junk.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "id",
            "key",
            "prompt",
            "deps",
            "dependencies",
            "dependecies",
            "reads",
            "writes",
            "timeout",
            "duration_hint",
            "retries",
            "executor",
            "resources",
            "priority",
            "cost",
            "title",
            "description",
            "status",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,12}",
    ]
}

/// A value of any JSON type, small.
fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        number_text().prop_map(|n| if n == "nan" || n == "inf" {
            "1".to_owned()
        } else {
            n
        }),
        duration_text().prop_map(|d| format!("{d:?}")),
        Just("null".to_owned()),
        Just("true".to_owned()),
        "\"[a-zA-Z0-9 _-]{0,8}\"",
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| format!("[{}]", v.join(","))),
            proptest::collection::vec((field_name(), inner), 0..4).prop_map(|fields| {
                let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k:?}: {v}")).collect();
                format!("{{{}}}", body.join(","))
            }),
        ]
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn trust_14_arbitrary_bytes_never_panic_the_loaders(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        load_everything(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn trust_14_arbitrary_text_never_panics_the_loaders(text in "\\PC{0,200}") {
        load_everything(&text);
    }

    #[test]
    fn trust_14_durations_in_toml_never_panic(
        duration in duration_text(),
        number in number_text(),
        field in prop::sample::select(vec!["timeout", "duration_hint"]),
    ) {
        load_everything(&format!("[[task]]\nid = \"a\"\n{field} = {duration:?}\n"));
        load_everything(&format!("[[task]]\nid = \"a\"\n{field} = {number}\n"));
    }

    #[test]
    fn trust_14_task_shaped_json_never_panics(
        tasks in proptest::collection::vec(
            proptest::collection::vec((field_name(), json_value()), 0..6),
            0..4,
        ),
    ) {
        let tasks: Vec<String> = tasks
            .iter()
            .map(|fields| {
                let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k:?}: {v}")).collect();
                format!("{{{}}}", body.join(", "))
            })
            .collect();
        load_everything(&format!("{{\"tasks\": [{}]}}", tasks.join(", ")));
    }

    #[test]
    fn trust_14_templates_never_panic_the_splitter(
        template in proptest::collection::vec(
            prop_oneof![
                Just("'".to_owned()),
                Just("\"".to_owned()),
                Just("\\".to_owned()),
                Just(" ".to_owned()),
                Just("{prompt}".to_owned()),
                Just("{workdir}".to_owned()),
                "\\PC{0,4}",
            ],
            0..16,
        ),
    ) {
        let template = template.concat();
        if let Ok(executor) = ProcessExecutor::from_template(&template) {
            prop_assert!(!executor.argv().is_empty(), "{template:?}");
        }
    }
}
