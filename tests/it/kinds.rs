//! Black-box tests of the element kinds beyond `manual`: compose (split
//! rules, integration commands), script (writable root, layout), and real C
//! builds with the make, cmake and autotools kinds over a toolchain
//! assembled from this machine's Debian packages.

use std::path::Path;

use crate::ctx::{busybox_project, Ctx};
use crate::toolchain::Flavor;

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display()))
}

#[test]
fn compose_filters_by_split_rules_and_runs_integration_commands_on_a_copy() {
    let ctx = busybox_project();
    ctx.write(
        "elements/lib.yaml",
        "kind: manual\nbuild-depends: [base.yaml]\nconfig:\n  install-commands:\n\
         \x20   - mkdir -p %{install-root}%{includedir} %{install-root}%{libdir} %{install-root}%{docdir}\n\
         \x20   - echo h > %{install-root}%{includedir}/lib.h\n\
         \x20   - echo so > %{install-root}%{libdir}/libx.so\n\
         \x20   - echo doc > %{install-root}%{docdir}/README\n\
         public:\n  integration-commands:\n    - echo integrated > /etc/ld.so.done\n",
    );
    ctx.write(
        "elements/rootfs.yaml",
        "kind: compose\nbuild-depends: [base.yaml, lib.yaml]\nconfig:\n  exclude: [devel, doc]\n",
    );
    let run = ctx.cas(["--json", "build", "rootfs.yaml"]).ok();
    assert_eq!(run.json()["failed"], 0);
    let out = ctx.path("out");
    ctx.cas(["checkout", "rootfs.yaml", out.to_str().unwrap()])
        .ok();
    assert_eq!(read(out.join("usr/lib/libx.so")), "so\n");
    assert!(
        !out.join("usr/include/lib.h").exists(),
        "devel domain not excluded"
    );
    assert!(
        !out.join("usr/share/doc/README").exists(),
        "doc domain not excluded"
    );
    assert_eq!(read(out.join("etc/ld.so.done")), "integrated\n");
    assert!(out.join("bin/busybox").exists());
    // The sandbox's mount points are not left in the output.
    assert!(
        !out.join("build").exists() && !out.join("install").exists() && !out.join("proc").exists()
    );
    // Integration never wrote into the store: the store still verifies.
    ctx.cas(["store", "verify"]).ok();
}

/// The `manifest` kind (a behaviour of its own: engine/builder/src/kinds/manifest.rs
/// and elements/manifest.yaml): the inventory of what its dependencies stage,
/// a new key when any of their files changes, nothing rebuilt otherwise.
#[test]
fn manifest_lists_every_staged_file_with_its_digest() {
    let ctx = busybox_project();
    ctx.write(
        "elements/app.yaml",
        "kind: manual\nbuild-depends: [base.yaml]\nvariables:\n  greeting: hello\nconfig:\n  install-commands:\n\
         \x20   - mkdir -p %{install-root}/opt/app\n\
         \x20   - echo %{greeting} > %{install-root}/opt/app/greeting\n",
    );
    ctx.write(
        "elements/list.yaml",
        "kind: manifest\nbuild-depends: [base.yaml, app.yaml]\nconfig:\n  path: /MANIFEST\n",
    );
    let run = ctx.cas(["--json", "build", "list.yaml"]).ok();
    assert_eq!(run.json()["failed"], 0);
    let out = ctx.path("out");
    ctx.cas(["checkout", "list.yaml", out.to_str().unwrap()])
        .ok();
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["MANIFEST"]);
    let text = read(out.join("MANIFEST"));
    let hello = blake3::hash(b"hello\n").to_hex().to_string();
    assert!(
        text.lines()
            .any(|l| l == format!("f 0644 6 {hello} /opt/app/greeting")),
        "{text}"
    );
    assert!(text.lines().any(|l| l.ends_with(" /bin/busybox")), "{text}");
    assert!(text.lines().any(|l| l == "d 0755 /opt/app"), "{text}");
    // what it lists changes: a new key, and the new digest listed
    let key = |ctx: &Ctx| {
        ctx.cas(["--json", "show", "list.yaml"])
            .ok()
            .per_element("key")["list.yaml"]
            .clone()
    };
    let before = key(&ctx);
    ctx.write(
        "elements/app.yaml",
        read(ctx.path("project/elements/app.yaml")).replace("greeting: hello", "greeting: bye"),
    );
    assert_ne!(key(&ctx), before);
    ctx.cas(["build", "list.yaml"]).ok();
    let out2 = ctx.path("out2");
    ctx.cas(["checkout", "list.yaml", out2.to_str().unwrap()])
        .ok();
    let bye = blake3::hash(b"bye\n").to_hex().to_string();
    assert!(read(out2.join("MANIFEST")).contains(&format!("f 0644 4 {bye} /opt/app/greeting")));
    // a path that climbs out is refused, naming it
    ctx.write(
        "elements/bad.yaml",
        "kind: manifest\nbuild-depends: [base.yaml]\nconfig:\n  path: /../x\n",
    );
    let bad = ctx.cas(["build", "bad.yaml"]).expect_code(1);
    assert!(bad.stderr.contains("must name a file"), "{}", bad.stderr);
}

#[test]
fn script_with_a_writable_root_outputs_a_chosen_directory() {
    let ctx = busybox_project();
    ctx.write(
        "elements/image.yaml",
        "kind: script\nbuild-depends: [base.yaml]\nconfig:\n  root-read-only: false\n  output: /out\n  commands:\n\
         \x20   - mkdir -p /out /etc\n\
         \x20   - echo configured > /etc/app.conf\n\
         \x20   - tar -C /etc -cf /out/etc.tar app.conf\n",
    );
    ctx.cas(["build", "image.yaml"]).ok();
    let out = ctx.path("out");
    ctx.cas(["checkout", "image.yaml", out.to_str().unwrap()])
        .ok();
    assert!(out.join("etc.tar").is_file());
    assert!(!out.join("bin").exists(), "the output is /out only");
    ctx.cas(["store", "verify"]).ok();
}

/// A project whose base is the C toolchain (hardlinked in: test input only).
fn c_project(flavor: Flavor) -> Ctx {
    let ctx = Ctx::new();
    ctx.write("project.yaml", "name: c\nelement-path: elements\n");
    crate::ctx::toolchain_element(&ctx, flavor);
    // A static library built with the make kind.
    ctx.write("files/greet/greet.h", "const char *greeting(void);\n");
    ctx.write(
        "files/greet/greet.c",
        "#include \"greet.h\"\nconst char *greeting(void) { return GREETING; }\n",
    );
    ctx.write(
        "files/greet/Makefile",
        "PREFIX ?= /usr\nCFLAGS ?= -O2\nall: libgreet.a\n\
         libgreet.a: greet.o\n\tar rcs $@ $^\n\
         greet.o: greet.c greet.h\n\t$(CC) $(CFLAGS) '-DGREETING=\"hello from libgreet\"' -c greet.c\n\
         install: libgreet.a\n\tmkdir -p $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include\n\
         \tcp libgreet.a $(DESTDIR)$(PREFIX)/lib/\n\tcp greet.h $(DESTDIR)$(PREFIX)/include/\n",
    );
    ctx.write(
        "elements/libgreet.yaml",
        "kind: make\nbuild-depends: [toolchain.yaml]\nsources:\n  - kind: local\n    path: files/greet\n",
    );
    ctx.write(
        "files/hello/hello.c",
        "#include <stdio.h>\n#include <greet.h>\nint main(void) { puts(greeting()); return 0; }\n",
    );
    ctx
}

fn run_program_in_script(ctx: &Ctx, program_element: &str, binary: &str) -> String {
    ctx.write(
        "elements/run.yaml",
        format!(
            "kind: script\nbuild-depends: [toolchain.yaml, {program_element}]\nconfig:\n  commands:\n\
             \x20   - mkdir -p %{{install-root}}\n    - {binary} > %{{install-root}}/output.txt\n"
        ),
    );
    let run = ctx.cas(["--json", "build", "run.yaml"]).ok();
    assert_eq!(run.json()["failed"], 0);
    let out = ctx.path("run-out");
    ctx.cas(["checkout", "run.yaml", out.to_str().unwrap()])
        .ok();
    read(out.join("output.txt"))
}

#[test]
fn c_library_and_program_with_make_and_autotools() {
    let ctx = c_project(Flavor::C);
    // A hand-written configure script, as autotools would generate one.
    ctx.write(
        "files/hello/configure",
        "#!/bin/sh\nprefix=/usr\nfor a; do case $a in --prefix=*) prefix=${a#--prefix=};; esac; done\n\
         printf 'all: hello\\nhello: hello.c\\n\\t$(CC) -O2 -o hello hello.c -lgreet\\ninstall: hello\\n\\tmkdir -p $(DESTDIR)%s/bin\\n\\tcp hello $(DESTDIR)%s/bin/\\n' \"$prefix\" \"$prefix\" > Makefile\n",
    );
    std::fs::set_permissions(
        ctx.project().join("files/hello/configure"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    ctx.write(
        "elements/hello.yaml",
        "kind: autotools\nbuild-depends: [toolchain.yaml, libgreet.yaml]\nsources:\n  - kind: local\n    path: files/hello\n",
    );
    let run = ctx.cas(["--json", "build", "hello.yaml"]).ok();
    assert_eq!(run.json()["built"], 3, "{}", run.stdout);
    assert_eq!(
        run_program_in_script(&ctx, "hello.yaml", "/usr/bin/hello"),
        "hello from libgreet\n"
    );
}

#[test]
fn c_program_with_cmake() {
    let ctx = c_project(Flavor::CMake);
    ctx.write(
        "files/hello/CMakeLists.txt",
        "cmake_minimum_required(VERSION 3.13)\nproject(hello C)\nadd_executable(hello hello.c)\n\
         target_link_libraries(hello greet)\ninstall(TARGETS hello DESTINATION bin)\n",
    );
    ctx.write(
        "elements/hello.yaml",
        "kind: cmake\nbuild-depends: [toolchain.yaml, libgreet.yaml]\nsources:\n  - kind: local\n    path: files/hello\n",
    );
    ctx.cas(["build", "hello.yaml"]).ok();
    assert_eq!(
        run_program_in_script(&ctx, "hello.yaml", "/usr/bin/hello"),
        "hello from libgreet\n"
    );
}

/// A project kind of the script behaviour written without `extends`
/// (as dpkg-configure, initramfs and ext4-image are): its `layout` is a list
/// of mappings because the behaviour says so, whatever its default.
#[test]
fn a_script_kind_without_extends_takes_a_layout_of_mappings() {
    let ctx = busybox_project();
    ctx.write(
        "kinds/pack.yaml",
        "behaviour: script\nconfig:\n  layout: []\n  root-read-only: true\n  output: /install\n  commands:\n    - cp /image/share/a /install/a\n",
    );
    ctx.write(
        "project.yaml",
        "name: t\nelement-path: elements\nkinds: kinds\n",
    );
    ctx.write(
        "elements/a.yaml",
        crate::ctx::manual(
            &[],
            "    - mkdir -p %{install-root}/share\n    - echo packed > %{install-root}/share/a\n",
        ),
    );
    ctx.write(
        "elements/p.yaml",
        "kind: pack\nbuild-depends: [base.yaml, a.yaml]\nconfig:\n  layout:\n  - {element: base.yaml, destination: /}\n  - {element: a.yaml, destination: /image}\n",
    );
    ctx.cas(["build", "p.yaml"]).ok();
    let out = ctx.path("out");
    ctx.cas(["checkout", "p.yaml", out.to_str().unwrap()]).ok();
    assert_eq!(read(out.join("a")), "packed\n");
}
