//! kvm-unit-tests' `unittests.cfg`: one `[name]` section per test, `key = value` lines, `#`
//! comments. Both of the suite's formats are read: the older `extra_params = -append '...'
//! -smp N -m M` and the newer `test_args = '...'` with `qemu_params = -m M -machine ...`.
//! `smp` may be `$MAX_SMP` or the suite's `$((($MAX_SMP < N)?$MAX_SMP:N))`, evaluated here for
//! the `MAX_SMP` the caller gives.

/// One test of the file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Test {
    /// The section name.
    pub name: String,
    /// The image (`file`), relative to the file's directory.
    pub file: String,
    /// The guest's command line (`/chosen/bootargs`).
    pub args: String,
    /// The vCPUs.
    pub smp: u32,
    /// The RAM in MiB (`-m`), if the test names it.
    pub mem_mib: Option<u64>,
    /// The GIC the test asks of the machine (`-machine gic-version=N`), if any.
    pub gic_version: Option<u32>,
    /// `-machine mte=on`.
    pub mte: bool,
    /// `arch` (`arm` or `arm64`), if the test is for one architecture only.
    pub arch: Option<String>,
    /// `groups`.
    pub groups: Vec<String>,
    /// `accel`, if the test asks for one (`kvm`: the suite skips it under TCG).
    pub accel: Option<String>,
}

/// Parses `text`, evaluating `smp` for `max_smp`.
///
/// # Errors
///
/// A line that is no section, no `key = value` and no comment, or an `smp` that is not
/// understood, with its line number.
pub fn parse(text: &str, max_smp: u32) -> Result<Vec<Test>, String> {
    let mut tests: Vec<Test> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |why: &str| format!("line {}: {why}: {raw:?}", i + 1);
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            tests.push(Test {
                name: name.trim().into(),
                smp: 1,
                ..Test::default()
            });
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| at("not key = value"))?;
        let test = tests
            .last_mut()
            .ok_or_else(|| at("a key before any [section]"))?;
        let value = value.trim();
        match key.trim() {
            "file" => test.file = value.into(),
            "smp" => test.smp = eval_smp(value, max_smp).ok_or_else(|| at("smp"))?,
            "test_args" => test.args = unquote(value).into(),
            "extra_params" | "qemu_params" => qemu_params(test, value).map_err(|e| at(&e))?,
            "arch" => test.arch = Some(value.into()),
            "groups" => test.groups = value.split_whitespace().map(Into::into).collect(),
            "accel" => test.accel = Some(value.into()),
            // disabled_if (all of the suite's say "not QEMU"), timeout, kvmtool_params and
            // check are for other runners or other limits.
            _ => {}
        }
    }
    Ok(tests)
}

/// `$MAX_SMP`, a number, or `$((($MAX_SMP < N)?$MAX_SMP:N))` (the smaller of the two).
fn eval_smp(value: &str, max_smp: u32) -> Option<u32> {
    if value == "$MAX_SMP" {
        return Some(max_smp);
    }
    if let Ok(n) = value.parse() {
        return Some(n);
    }
    let inner = value.strip_prefix("$((($MAX_SMP <")?.strip_suffix("))")?;
    let (cap, rest) = inner.split_once(")?$MAX_SMP:")?;
    let cap: u32 = cap.trim().parse().ok()?;
    (rest.trim().parse::<u32>().ok()? == cap).then(|| max_smp.min(cap))
}

/// The QEMU options a test gives: `-append '...'`, `-smp N`, `-m M`, `-machine K=V,...`.
fn qemu_params(test: &mut Test, value: &str) -> Result<(), String> {
    let words = shell_words(value)?;
    let mut it = words.iter();
    while let Some(word) = it.next() {
        let mut arg = || it.next().ok_or_else(|| format!("{word} without a value"));
        match word.as_str() {
            "-append" => arg()?.clone_into(&mut test.args),
            "-smp" => test.smp = arg()?.parse().map_err(|_| "-smp".to_string())?,
            "-m" => {
                let m = arg()?;
                test.mem_mib = Some(m.trim_end_matches('M').parse().map_err(|_| "-m")?);
            }
            "-machine" | "-M" => {
                for prop in arg()?.split(',') {
                    match prop.split_once('=') {
                        Some(("gic-version", v)) => {
                            test.gic_version = Some(v.parse().map_err(|_| "gic-version")?);
                        }
                        Some(("mte", "on")) => test.mte = true,
                        _ => {}
                    }
                }
            }
            // Anything else (-icount, -cpu options) is the bare reference's own business.
            _ => {}
        }
    }
    Ok(())
}

/// Splits `text` into words as a shell would for the suite's files: blanks separate, single or
/// double quotes group.
fn shell_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    if quote.is_some() {
        return Err("an unclosed quote".into());
    }
    words.extend(word);
    Ok(words)
}

fn unquote(value: &str) -> &str {
    for q in ['\'', '"'] {
        if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner;
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW: &str = "
# a comment
[selftest-setup]
file = selftest.flat
smp = 2
test_args = 'setup smp=2 mem=256'
qemu_params = -m 256
groups = selftest

[gicv2-mmio-3p]
file = gic.flat
smp = $((($MAX_SMP < 3)?$MAX_SMP:3))
test_args = mmio
qemu_params = -machine gic-version=2
groups = gic

[pmu-cycle-counter]
file = pmu.flat
test_args = \"cycle-counter 0\"
arch = arm64

[mte-sync]
file = mte.flat
qemu_params = -machine mte=on
accel = kvm
";

    #[test]
    fn the_newer_format_gives_args_vcpus_memory_and_machine_options() {
        let tests = parse(NEW, 4).unwrap();
        assert_eq!(tests.len(), 4);
        let setup = &tests[0];
        assert_eq!(setup.name, "selftest-setup");
        assert_eq!(setup.file, "selftest.flat");
        assert_eq!((setup.smp, setup.mem_mib), (2, Some(256)));
        assert_eq!(setup.args, "setup smp=2 mem=256");
        assert_eq!(setup.groups, ["selftest"]);
        assert_eq!((tests[1].smp, tests[1].gic_version), (3, Some(2)));
        assert_eq!(tests[2].args, "cycle-counter 0");
        assert_eq!(tests[2].arch.as_deref(), Some("arm64"));
        assert!(tests[3].mte);
        assert_eq!(tests[3].accel.as_deref(), Some("kvm"));
        assert_eq!((tests[3].smp, tests[3].mem_mib), (1, None));
    }

    #[test]
    fn the_older_format_gives_the_same_from_extra_params() {
        let old = "[selftest-setup]\nfile = selftest.flat\nsmp = 2\n\
                   extra_params = -m 256 -append 'setup smp=2 mem=256'\n";
        let test = &parse(old, 8).unwrap()[0];
        assert_eq!(test.args, "setup smp=2 mem=256");
        assert_eq!((test.smp, test.mem_mib), (2, Some(256)));
    }

    #[test]
    fn max_smp_and_its_capped_form_are_evaluated() {
        assert_eq!(eval_smp("$MAX_SMP", 4), Some(4));
        assert_eq!(eval_smp("$((($MAX_SMP < 8)?$MAX_SMP:8))", 4), Some(4));
        assert_eq!(eval_smp("$((($MAX_SMP < 3)?$MAX_SMP:3))", 4), Some(3));
        assert_eq!(eval_smp("$((($MAX_SMP < 3)?$MAX_SMP:2))", 4), None);
        assert_eq!(eval_smp("$NPROC", 4), None);
    }

    #[test]
    fn a_line_outside_the_grammar_is_refused_with_its_number() {
        let err = parse("[a]\nfile = a.flat\nnonsense\n", 1).unwrap_err();
        assert!(err.starts_with("line 3:"), "{err}");
        assert!(
            parse("file = a.flat\n", 1)
                .unwrap_err()
                .contains("before any")
        );
        assert!(parse("[a]\nextra_params = -append 'x\n", 1).is_err());
    }
}
