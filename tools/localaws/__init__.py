"""Local AWS stack for the project: moto server + real Rust Lambda binaries + infra/template.yaml."""
