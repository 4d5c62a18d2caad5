//! The Helm chart (`deploy/helm/chatvault`) and the images it names
//! (`deploy/docker/Dockerfile`). No Kubernetes cluster runs here, so `helm lint` and
//! `helm template` run, and the rendered manifests are read: every workload runs as a
//! non-root user with a read-only root file system and resource limits, every long-running
//! container has readiness and liveness probes on its `/healthz` port, every secret comes
//! from a Kubernetes Secret (none is written in the values or rendered by the chart), and
//! every image is a target of the Dockerfile.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart() -> PathBuf {
    repository().join("deploy/helm/chatvault")
}

fn helm() -> PathBuf {
    let go_bin = std::env::var("HOME").map(|home| Path::new(&home).join("go/bin/helm")).ok();
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|folder| folder.join("helm"))
        .chain(go_bin)
        .find(|candidate| candidate.is_file())
        .expect("helm is installed (scripts/tools.sh installs it)")
}

fn run_helm(arguments: &[&str]) -> String {
    let output = Command::new(helm()).args(arguments).output().expect("helm runs");
    assert!(
        output.status.success(),
        "helm {arguments:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// Renders the chart with `settings` (`key=value` for `--set`); returns its objects.
fn render(settings: &[&str]) -> Vec<Value> {
    let chart = chart().display().to_string();
    let mut arguments = vec!["template", "archive", chart.as_str(), "--namespace", "chatvault"];
    for setting in settings {
        arguments.extend(["--set", setting]);
    }
    let text = run_helm(&arguments);
    serde_yaml::Deserializer::from_str(&text).filter_map(|document| Value::deserialize(document).ok()).filter(|object| !object.is_null()).collect()
}

fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

fn pod_spec(object: &Value) -> Option<&Value> {
    matches!(kind(object), "Deployment" | "StatefulSet" | "Job").then(|| &object["spec"]["template"]["spec"])
}

fn containers(pod: &Value) -> Vec<&Value> {
    pod["containers"].as_sequence().map(|containers| containers.iter().collect()).unwrap_or_default()
}

/// Whether an environment variable's name says it carries a secret.
fn names_a_secret(variable: &str) -> bool {
    ["SECRET", "PASSWORD", "TOKEN", "KEY", "DATABASE_URL", "BOOTSTRAP_ADMIN"].iter().any(|word| variable.contains(word))
}

#[test]
fn helm_lints_the_chart_with_and_without_the_bot() {
    let chart = chart().display().to_string();
    run_helm(&["lint", "--strict", chart.as_str()]);
    run_helm(&["lint", "--strict", chart.as_str(), "--set", "bot.enabled=true", "--set", "serviceMonitor.enabled=true"]);
}

#[test]
fn every_workload_is_non_root_limited_probed_and_reads_its_secrets_from_kubernetes_secrets() {
    let objects = render(&["bot.enabled=true", "bot.googleClientId=client.apps.googleusercontent.com", "serviceMonitor.enabled=true"]);
    let deployments: Vec<&str> = objects.iter().filter(|object| kind(object) == "Deployment").map(name).collect();
    for service in ["ingest", "storage", "users", "audit", "backup", "web", "bot", "bot-worker"] {
        assert!(deployments.contains(&format!("archive-chatvault-{service}").as_str()), "a Deployment of {service}: {deployments:?}");
    }
    let nodes = objects.iter().find(|object| kind(object) == "StatefulSet").expect("the storage nodes' StatefulSet");
    assert_eq!(name(nodes), "archive-chatvault-storage-node");
    assert_eq!(nodes["spec"]["volumeClaimTemplates"][0]["metadata"]["name"].as_str(), Some("parts"), "a volume per node");
    let monitor = objects.iter().find(|object| kind(object) == "ServiceMonitor").expect("a ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"].as_str(), Some("/metrics"));
    assert!(objects.iter().all(|object| kind(object) != "Secret"), "the chart renders no Secret: secrets come from existing ones");

    let mut checked = 0;
    for object in &objects {
        let Some(pod) = pod_spec(object) else { continue };
        let workload = format!("{} {}", kind(object), name(object));
        assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true), "{workload}: pod runs as non-root");
        assert!(pod["securityContext"]["runAsUser"].as_u64().is_some_and(|user| user > 0), "{workload}: a non-zero user");
        for container in containers(pod) {
            let container_name = container["name"].as_str().unwrap_or_default();
            let what = format!("{workload} container {container_name}");
            let security = &container["securityContext"];
            assert_eq!(security["runAsNonRoot"].as_bool(), Some(true), "{what}: non-root");
            assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false), "{what}: no privilege escalation");
            assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true), "{what}: read-only root");
            assert!(
                security["capabilities"]["drop"].as_sequence().is_some_and(|drop| drop.iter().any(|item| item.as_str() == Some("ALL"))),
                "{what}"
            );
            for resource in ["cpu", "memory"] {
                assert!(!container["resources"]["limits"][resource].is_null(), "{what}: a {resource} limit");
                assert!(!container["resources"]["requests"][resource].is_null(), "{what}: a {resource} request");
            }
            if kind(object) != "Job" {
                assert_eq!(container["readinessProbe"]["httpGet"]["path"].as_str(), Some("/healthz"), "{what}: readiness on /healthz");
                assert!(!container["livenessProbe"].is_null(), "{what}: a liveness probe");
            }
            for variable in container["env"].as_sequence().into_iter().flatten() {
                let variable_name = variable["name"].as_str().unwrap_or_default();
                if names_a_secret(variable_name) {
                    assert!(variable["value"].is_null(), "{what}: {variable_name} has a value written in the manifest");
                    assert!(!variable["valueFrom"]["secretKeyRef"]["name"].is_null(), "{what}: {variable_name} comes from a Secret");
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "every workload's containers were checked ({checked})");
}

#[test]
fn the_bot_is_off_by_default_and_the_values_hold_no_secret() {
    let objects = render(&[]);
    assert!(objects.iter().all(|object| !name(object).contains("-bot")), "no bot without bot.enabled");
    assert!(objects.iter().all(|object| kind(object) != "ServiceMonitor"), "no ServiceMonitor unless asked (it needs the operator's CRDs)");
    let values: Value = serde_yaml::from_str(&std::fs::read_to_string(chart().join("values.yaml")).expect("values.yaml")).expect("YAML");
    let secrets = values["secrets"].as_mapping().expect("a secrets section");
    for (key, value) in secrets {
        let key = key.as_str().unwrap_or_default();
        assert!(key.ends_with("Secret"), "secrets.{key} names a Secret, it holds none");
        assert!(value.as_str().is_some_and(|secret_name| !secret_name.is_empty() && !secret_name.contains(' ')), "secrets.{key}: a Secret's name");
    }
}

#[test]
fn every_image_the_chart_names_is_a_non_root_target_of_the_dockerfile() {
    let dockerfile = std::fs::read_to_string(repository().join("deploy/docker/Dockerfile")).expect("deploy/docker/Dockerfile");
    let targets: Vec<&str> = dockerfile.lines().filter_map(|line| line.strip_prefix("FROM runtime AS ")).map(str::trim).collect();
    let runtime = dockerfile.split("FROM runtime AS").next().and_then(|head| head.split("AS runtime").nth(1)).expect("a runtime stage");
    assert!(runtime.contains("USER 10001"), "the runtime stage runs as user 10001");
    let objects = render(&["bot.enabled=true"]);
    for object in &objects {
        let Some(pod) = pod_spec(object) else { continue };
        for container in containers(pod) {
            let image = container["image"].as_str().expect("an image");
            let binary = image.rsplit('/').next().and_then(|last| last.split(':').next()).expect("repository/binary:tag");
            let target = if binary == "chatvault" { "cli" } else { binary.strip_prefix("chatvault-").expect("a chatvault image") };
            assert!(targets.contains(&target), "{image} is built by the Dockerfile's target {target}: {targets:?}");
            assert!(dockerfile.contains(&format!("/out/{binary} /usr/local/bin/")), "the {target} stage copies {binary}");
        }
    }
}
