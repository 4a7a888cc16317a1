//! Unit tests of the fault layer: rule matching, plan files and the injected answers.

use super::*;

fn request(target: &str, body: &str) -> HttpRequest {
    let mut request = HttpRequest::new(SdkBody::from(body.to_owned()));
    request
        .headers_mut()
        .insert("x-amz-target", target.to_owned());
    request
}

fn faults(dir: &Path, plan: &str) -> Faults {
    std::fs::write(dir.join("plan.json"), plan).unwrap();
    Faults {
        dir: dir.to_owned(),
        function: "clanwar-test-war-manager".into(),
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("clanwar-faults-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_rule_fires_for_its_function_operation_and_body_only_and_only_as_often_as_it_says() {
    let dir = temp_dir("times");
    let f = faults(
        &dir,
        r#"{"id":"a","rules":[
            {"function":"war-manager","operation":"TransactWriteItems","fault":"throttle",
             "times":2,"body_contains":"mine"},
            {"function":"score-calculator","operation":"*","fault":"unreachable"}]}"#,
    );
    assert_eq!(f.pick("GetItem", b"mine"), None);
    assert_eq!(f.pick("TransactWriteItems", b"someone else's"), None);
    assert_eq!(
        f.pick("TransactWriteItems", b"{mine}"),
        Some(Fault::Throttle)
    );
    // Another process of the stack shares the count through the marker files.
    let other = Faults {
        dir: f.dir.clone(),
        function: "clanwar-test-war-manager".into(),
    };
    assert_eq!(
        other.pick("TransactWriteItems", b"mine"),
        Some(Fault::Throttle)
    );
    assert_eq!(f.pick("TransactWriteItems", b"mine"), None);
    assert_eq!(other.pick("TransactWriteItems", b"mine"), None);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn every_plan_in_the_directory_is_obeyed_and_a_broken_or_removed_one_injects_nothing() {
    let dir = temp_dir("plans");
    let f = faults(&dir, r#"{"rules":[]}"#);
    assert_eq!(f.pick("PutEvents", b""), None);
    let other = dir.join("other-test.json");
    std::fs::write(
        &other,
        r#"{"rules":[{"operation":"PutEvents","fault":"server_error"}]}"#,
    )
    .unwrap();
    assert_eq!(f.pick("PutEvents", b""), Some(Fault::ServerError));
    std::fs::write(&other, "{not json").unwrap();
    assert_eq!(f.pick("PutEvents", b""), None);
    std::fs::write(
        &other,
        r#"{"rules":[{"operation":"PutEvents","fault":"unavailable"}]}"#,
    )
    .unwrap();
    assert_eq!(f.pick("PutEvents", b""), Some(Fault::Unavailable));
    std::fs::remove_file(&other).unwrap();
    assert_eq!(f.pick("PutEvents", b""), None);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Through a real SDK client: the injected answer is the modelled error, and nothing was
/// sent for a fault that answers in AWS's place.
#[tokio::test]
async fn the_sdk_reads_an_injected_answer_as_the_modelled_error() {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    use aws_smithy_runtime_api::client::http::http_client_fn;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug)]
    struct Counting(Arc<AtomicU32>);
    impl HttpConnector for Counting {
        fn call(&self, _: HttpRequest) -> HttpConnectorFuture {
            self.0.fetch_add(1, Ordering::SeqCst);
            HttpConnectorFuture::ready(Ok(HttpResponse::new(
                StatusCode::try_from(200).unwrap(),
                SdkBody::from("{}"),
            )))
        }
    }
    let sent = Arc::new(AtomicU32::new(0));
    let counter = sent.clone();
    let inner = http_client_fn(move |_, _| SharedHttpConnector::new(Counting(counter.clone())));
    let dir = temp_dir("sdk");
    let plan = r#"{"id":"c","rules":[{"operation":"PutItem","fault":"throttle","times":1}]}"#;
    let client = SharedHttpClient::new(FaultyClient {
        inner,
        faults: Arc::new(faults(&dir, plan)),
    });
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("a", "b", None, None, "test"))
        .endpoint_url("http://127.0.0.1:9")
        .retry_config(aws_smithy_types::retry::RetryConfig::disabled())
        .http_client(client)
        .build();
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(config);
    let put = || {
        dynamodb
            .put_item()
            .table_name("t")
            .item("PK", aws_sdk_dynamodb::types::AttributeValue::S("k".into()))
    };
    let err = put().send().await.unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_provisioned_throughput_exceeded_exception()),
        "{err:?}"
    );
    assert_eq!(
        sent.load(Ordering::SeqCst),
        0,
        "a throttled call is not sent"
    );
    put().send().await.unwrap();
    assert_eq!(sent.load(Ordering::SeqCst), 1);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn injected_errors_are_what_aws_answers() {
    let tx = request(
        "DynamoDB_20120810.TransactWriteItems",
        r#"{"TransactItems":[{"Put":{}},{"Update":{}},{"Delete":{}}]}"#,
    );
    let answer = error_response(Fault::TransactionConflict, "TransactWriteItems", &tx);
    assert_eq!(answer.status().as_u16(), 400);
    let body: serde_json::Value = serde_json::from_slice(answer.body().bytes().unwrap()).unwrap();
    assert!(body["__type"]
        .as_str()
        .unwrap()
        .ends_with("#TransactionCanceledException"));
    let codes: Vec<_> = body["CancellationReasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes, ["TransactionConflict", "None", "None"]);

    let put = request("DynamoDB_20120810.PutItem", "{}");
    let body = error_response(Fault::Throttle, "PutItem", &put);
    assert!(std::str::from_utf8(body.body().bytes().unwrap())
        .unwrap()
        .contains("ProvisionedThroughputExceededException"));
    let start = request("AWSStepFunctions.StartExecution", "{}");
    assert_eq!(operation_of(&start), "StartExecution");
    let body = error_response(Fault::Throttle, "StartExecution", &start);
    assert!(std::str::from_utf8(body.body().bytes().unwrap())
        .unwrap()
        .contains("\"ThrottlingException\""));
    assert_eq!(
        error_response(Fault::Unavailable, "PutEvents", &start)
            .status()
            .as_u16(),
        503
    );
}
