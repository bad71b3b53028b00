use corral_cri_api::v1::{Capability as CriCaps, KeyValue, Signal as CriSignal};
use oci_spec::runtime::{Capability, Process};

use super::super::process::{DEFAULT_PATH, merge_args};
use super::super::{exec_process, signal::parse_signal, stop_signal};
use super::{Fixture, image, invalid, strings};

fn process(f: &Fixture) -> Process {
    f.spec().unwrap().process().clone().unwrap()
}

fn env_of(p: &Process) -> Vec<String> {
    p.env().clone().unwrap()
}

#[test]
fn command_args_entrypoint_cmd_merge_table() {
    let ep = strings(&["/ep", "-x"]);
    let cmd = strings(&["cmd", "1"]);
    let (c, a) = (strings(&["/bin/c"]), strings(&["a1", "a2"]));
    let none: Vec<String> = vec![];
    type Case<'a> = (
        &'a [String],
        &'a [String],
        &'a [String],
        &'a [String],
        &'a [&'a str],
    );
    let cases: [Case; 7] = [
        // command + args: the image's Entrypoint and Cmd both ignored
        (&c, &a, &ep, &cmd, &["/bin/c", "a1", "a2"]),
        // command only: Cmd ignored too
        (&c, &none, &ep, &cmd, &["/bin/c"]),
        // args only: Entrypoint + args
        (&none, &a, &ep, &cmd, &["/ep", "-x", "a1", "a2"]),
        // neither: Entrypoint + Cmd
        (&none, &none, &ep, &cmd, &["/ep", "-x", "cmd", "1"]),
        // no Entrypoint: Cmd alone, or args alone
        (&none, &none, &none, &cmd, &["cmd", "1"]),
        (&none, &a, &none, &cmd, &["a1", "a2"]),
        (&c, &none, &none, &none, &["/bin/c"]),
    ];
    for (command, args, ep, cmd, want) in cases {
        assert_eq!(merge_args(command, args, ep, cmd).unwrap(), strings(want));
    }
    assert_eq!(
        invalid(merge_args(&none, &none, &none, &none)),
        "no command specified"
    );
    assert_eq!(
        invalid(merge_args(&none, &none, &[String::new()], &none)),
        "no command specified"
    );
    assert!(invalid(merge_args(&c, &strings(&["a\0"]), &none, &none)).contains("args[0]"));
}

#[test]
fn container_args_come_from_the_merge() {
    let mut f = Fixture::new();
    assert_eq!(
        process(&f).args().clone().unwrap(),
        strings(&["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"])
    );
    f.image = image(serde_json::json!({}));
    assert_eq!(invalid(f.spec()), "no command specified");
}

#[test]
fn env_image_then_cri_override_by_key_with_defaults() {
    let mut f = Fixture::new();
    f.config.envs = vec![
        KeyValue {
            key: "NGINX_VERSION".into(),
            value: "2".into(),
        },
        KeyValue {
            key: "EMPTY".into(),
            value: String::new(),
        },
    ];
    let env = env_of(&process(&f));
    assert_eq!(
        env,
        strings(&[
            "PATH=/usr/local/bin:/usr/bin",
            "HOSTNAME=web-0",
            "NGINX_VERSION=2",
            "EMPTY=",
            "HOME=/root",
        ])
    );

    // An image entry without '=' unsets; PATH defaults when the image has none; TERM with a
    // tty; HOME from the user's entry.
    f.image = image(serde_json::json!({"Cmd": ["sh"], "Env": ["A=1", "B=2", "A"]}));
    let env = env_of(&process(&f));
    assert!(!env.iter().any(|e| e == "A" || e.starts_with("A=")));
    assert!(env.contains(&"B=2".to_string()));

    f.image = image(serde_json::json!({"Cmd": ["sh"], "User": "app"}));
    f.config.tty = true;
    let p = process(&f);
    assert_eq!(p.terminal(), Some(true));
    let env = env_of(&p);
    assert!(env.contains(&format!("PATH={DEFAULT_PATH}")));
    assert!(env.contains(&"TERM=xterm".to_string()));
    assert!(env.contains(&"HOME=/home/app".to_string()));

    // HOME and HOSTNAME set by the image or the request win.
    f.config.envs = vec![
        KeyValue {
            key: "HOME".into(),
            value: "/data".into(),
        },
        KeyValue {
            key: "HOSTNAME".into(),
            value: "x".into(),
        },
    ];
    let env = env_of(&process(&f));
    assert!(env.contains(&"HOME=/data".to_string()));
    assert!(env.contains(&"HOSTNAME=x".to_string()));
    assert!(!env.contains(&"HOSTNAME=web-0".to_string()));
}

#[test]
fn bad_env_is_rejected_naming_it() {
    let mut f = Fixture::new();
    for (key, value, want) in [
        ("", "v", "envs[1].key is empty"),
        ("A=B", "v", "envs[1].key: \"A=B\" contains '='"),
        ("A", "v\0", "envs[1].value: contains a NUL byte"),
        ("A\0", "v", "envs[1].key: contains a NUL byte"),
    ] {
        f.config.envs = vec![
            KeyValue {
                key: "OK".into(),
                value: "1".into(),
            },
            KeyValue {
                key: key.into(),
                value: value.into(),
            },
        ];
        assert_eq!(invalid(f.spec()), want);
    }
}

#[test]
fn cwd_from_request_then_image_then_root() {
    let mut f = Fixture::new();
    assert_eq!(process(&f).cwd().to_str(), Some("/"));
    f.image = image(serde_json::json!({"Cmd": ["sh"], "WorkingDir": "/srv"}));
    assert_eq!(process(&f).cwd().to_str(), Some("/srv"));
    f.config.working_dir = "/work".into();
    assert_eq!(process(&f).cwd().to_str(), Some("/work"));
    f.config.working_dir = "rel".into();
    assert!(invalid(f.spec()).starts_with("working_dir:"));
}

fn caps(f: &Fixture) -> (Vec<Capability>, Vec<Capability>, Vec<Capability>) {
    let c = process(f).capabilities().clone().unwrap();
    let sorted = |s: &Option<oci_spec::runtime::Capabilities>| {
        let mut v: Vec<Capability> = s.clone().unwrap().into_iter().collect();
        v.sort_by_key(|c| c.to_string());
        v
    };
    assert_eq!(c.bounding(), c.effective());
    assert_eq!(c.bounding(), c.permitted());
    (
        sorted(c.bounding()),
        sorted(c.inheritable()),
        sorted(c.ambient()),
    )
}

#[test]
fn default_capabilities_are_containerds() {
    let f = Fixture::new();
    let (main, inh, amb) = caps(&f);
    assert_eq!(main.len(), 14);
    assert!(main.contains(&Capability::NetBindService));
    assert!(!main.contains(&Capability::SysAdmin));
    assert!(inh.is_empty() && amb.is_empty());
}

#[test]
fn capabilities_add_drop_and_all() {
    let mut f = Fixture::new();
    f.sc().capabilities = Some(CriCaps {
        add_capabilities: strings(&["NET_ADMIN", "cap_sys_time"]),
        drop_capabilities: strings(&["CHOWN", "CAP_KILL"]),
        add_ambient_capabilities: vec![],
    });
    let (main, inh, _) = caps(&f);
    assert!(main.contains(&Capability::NetAdmin) && main.contains(&Capability::SysTime));
    assert!(!main.contains(&Capability::Chown) && !main.contains(&Capability::Kill));
    assert_eq!(main.len(), 14);
    assert!(inh.is_empty());

    // ALL added, one dropped.
    f.sc().capabilities = Some(CriCaps {
        add_capabilities: strings(&["ALL"]),
        drop_capabilities: strings(&["SYS_ADMIN"]),
        add_ambient_capabilities: vec![],
    });
    let (main, _, _) = caps(&f);
    // ALL is every capability this process holds (root may lack some, e.g. SYS_RESOURCE).
    let held = crate::spec::process::held_capabilities();
    assert!(held.contains(&Capability::SysAdmin));
    assert_eq!(main.len(), held.len() - 1);
    assert!(!main.contains(&Capability::SysAdmin));

    // ALL dropped, one added back; ambient goes to every set.
    f.sc().capabilities = Some(CriCaps {
        add_capabilities: strings(&["NET_BIND_SERVICE"]),
        drop_capabilities: strings(&["all"]),
        add_ambient_capabilities: strings(&["NET_RAW"]),
    });
    let (main, inh, amb) = caps(&f);
    assert_eq!(main, vec![Capability::NetBindService, Capability::NetRaw]);
    assert_eq!(inh, vec![Capability::NetRaw]);
    assert_eq!(amb, vec![Capability::NetRaw]);

    f.sc().capabilities = Some(CriCaps {
        add_capabilities: strings(&["NET_ADMIN", "BOGUS"]),
        ..Default::default()
    });
    assert_eq!(
        invalid(f.spec()),
        "capabilities.add_capabilities[1]: unknown capability \"BOGUS\""
    );
}

#[test]
fn every_all_name_parses() {
    for name in super::super::process::ALL_CAP_NAMES {
        super::super::process::parse_capability("x", name).unwrap();
    }
}

#[test]
fn no_new_privileges_follows_the_security_context() {
    let mut f = Fixture::new();
    assert_eq!(process(&f).no_new_privileges(), Some(false));
    f.sc().no_new_privs = true;
    assert_eq!(process(&f).no_new_privileges(), Some(true));
}

#[test]
fn exec_process_keeps_the_container_identity() {
    let mut f = Fixture::new();
    f.image = image(serde_json::json!({"Cmd": ["sh"], "User": "app", "WorkingDir": "/srv"}));
    let spec = f.spec().unwrap();
    let p = exec_process(&spec, &strings(&["ls", "-l"]), true).unwrap();
    let c = spec.process().clone().unwrap();
    assert_eq!(p.args().clone().unwrap(), strings(&["ls", "-l"]));
    assert_eq!(p.user(), c.user());
    assert_eq!(p.cwd(), c.cwd());
    assert_eq!(p.capabilities(), c.capabilities());
    assert_eq!(p.terminal(), Some(true));
    assert!(env_of(&p).contains(&"TERM=xterm".to_string()));
    let p = exec_process(&spec, &strings(&["ls"]), false).unwrap();
    assert_eq!(p.env(), c.env());
    assert!(invalid(exec_process(&spec, &[], false)).contains("no command"));
    assert!(invalid(exec_process(&spec, &strings(&["a\0"]), false)).contains("cmd[0]"));
}

#[test]
fn stop_signal_from_request_image_or_default() {
    let mut f = Fixture::new();
    assert_eq!(stop_signal(&f.config, &f.image).unwrap(), libc::SIGTERM);
    f.image = image(serde_json::json!({"StopSignal": "SIGQUIT"}));
    assert_eq!(stop_signal(&f.config, &f.image).unwrap(), libc::SIGQUIT);
    f.config.stop_signal = CriSignal::Sigusr1 as i32;
    assert_eq!(stop_signal(&f.config, &f.image).unwrap(), libc::SIGUSR1);
    f.config.stop_signal = CriSignal::Sigrtminplus3 as i32;
    assert_eq!(
        stop_signal(&f.config, &f.image).unwrap(),
        libc::SIGRTMIN() + 3
    );
    f.config.stop_signal = CriSignal::Sigrtmaxminus2 as i32;
    assert_eq!(
        stop_signal(&f.config, &f.image).unwrap(),
        libc::SIGRTMAX() - 2
    );
    f.config.stop_signal = 0;
    f.image = image(serde_json::json!({"StopSignal": "NOPE"}));
    assert!(invalid(stop_signal(&f.config, &f.image)).contains("StopSignal"));
}

#[test]
fn signal_names_and_numbers_parse_like_docker() {
    for (raw, want) in [
        ("SIGTERM", libc::SIGTERM),
        ("TERM", libc::SIGTERM),
        ("term", libc::SIGTERM),
        ("15", 15),
        ("SIGKILL", libc::SIGKILL),
        ("HUP", libc::SIGHUP),
        ("SIGWINCH", libc::SIGWINCH),
        ("IOT", libc::SIGABRT),
        ("SIGRTMIN", libc::SIGRTMIN()),
        ("SIGRTMIN+3", libc::SIGRTMIN() + 3),
        ("RTMAX-1", libc::SIGRTMAX() - 1),
    ] {
        assert_eq!(parse_signal("f", raw).unwrap(), want, "{raw}");
    }
    for raw in [
        "0",
        "-1",
        "65",
        "SIGFOO",
        "SIGRTMIN+99",
        "SIGRTMIN-1",
        "RTMAX+1",
        "SIGRTMIN+",
        "",
    ] {
        assert!(parse_signal("f", raw).is_err(), "{raw}");
    }
}
