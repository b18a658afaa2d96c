//! AWS Bedrock: chat through the Converse API, embeddings through `invoke`, requests signed with
//! AWS Signature Version 4 (or, with a Bedrock API key, `Authorization: Bearer`).
//!
//! See <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_Operations_Amazon_Bedrock_Runtime.html>:
//! - `POST {base}/model/{modelId}/converse` (`/converse-stream` when streaming, whose reply is an
//!   AWS event stream);
//! - `POST {base}/model/{modelId}/invoke` with the model's own body (Titan and Cohere embeddings;
//!   Claude's Messages body with `anthropic_version: "bedrock-2023-05-31"`, and
//!   `/invoke-with-response-stream` for its event stream);
//! - the host is `bedrock-runtime.{region}.amazonaws.com`; the model id may be a foundation
//!   model id, a cross-region inference profile (`us.`/`eu.`/`apac.` prefixes) or an ARN, and is
//!   percent-encoded as one path segment (an ARN's `:` and `/` included);
//! - SigV4 service name `bedrock`; the signature covers the exact body bytes sent. Signing is
//!   done by the `aws-sigv4` crate.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign as sigv4_sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

use super::RequestType;

/// The SigV4 service name of the Bedrock runtime.
pub const SERVICE: &str = "bedrock";

/// The region used when neither the key nor the environment names one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The base URL of the Bedrock runtime in `region`.
pub fn base_url(region: &str) -> String {
    format!("https://bedrock-runtime.{region}.amazonaws.com")
}

/// Whether Bedrock serves `request_type` (chat through Converse, embeddings through `invoke`).
pub fn serves(request_type: RequestType) -> bool {
    matches!(request_type, RequestType::ChatCompletion | RequestType::Embedding)
}

/// Characters kept as they are in a path segment: RFC 3986's unreserved set.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `model` as one path segment (an ARN's `:` and `/` encoded; `.` and `..`, which a path
/// would resolve, encoded too).
pub fn model_segment(model: &str) -> String {
    super::segment_keeping(model, SEGMENT).into_owned()
}

/// The model id a request names upstream: the key's inference-profile ARN prefix (Bifrost's
/// `bedrock_key_config.arn`), when set, before the model.
pub fn model_id(arn: Option<&str>, model: &str) -> String {
    match arn {
        Some(arn) if !model.starts_with("arn:") => format!("{}/{model}", arn.trim_end_matches('/')),
        _ => model.to_string(),
    }
}

/// The `anthropic_version` Bedrock requires in Claude's Messages bodies sent to `invoke`.
pub const ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// Whether `model` is one of Anthropic's Claude models (a foundation model id, or a
/// cross-region profile of one), which `invoke` serves with the Anthropic Messages body.
pub fn invokes_messages(model: &str) -> bool {
    model.contains("anthropic.")
}

/// The `invoke` path of `model_id` (`invoke-with-response-stream` when streaming).
pub fn invoke_path(base_path: &str, model_id: &str, stream: bool) -> String {
    let action = if stream {
        "invoke-with-response-stream"
    } else {
        "invoke"
    };
    format!("{base_path}/model/{}/{action}", model_segment(model_id))
}

/// An Anthropic Messages body as Bedrock's `invoke` takes it: without `model` (the path names
/// it) or `stream` (the path says it), with Bedrock's `anthropic_version`. `None` when the body
/// is not a JSON object.
pub fn anthropic_body(body: &[u8]) -> Option<Vec<u8>> {
    let mut object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).ok()?;
    object.remove("model");
    object.remove("stream");
    object.insert("anthropic_version".into(), ANTHROPIC_VERSION.into());
    serde_json::to_vec(&object).ok()
}

/// The path of a request for `model_id`; `None` where Bedrock has no such endpoint.
pub fn path(base_path: &str, model_id: &str, request_type: RequestType, stream: bool) -> Option<String> {
    let action = match (request_type, stream) {
        (RequestType::ChatCompletion, false) => "converse",
        (RequestType::ChatCompletion, true) => "converse-stream",
        (RequestType::Embedding, _) => "invoke",
        _ => return None,
    };
    Some(format!("{base_path}/model/{}/{action}", model_segment(model_id)))
}

/// AWS credentials of one key, held as the signer's identity (built once, per config).
#[derive(Clone)]
pub struct AwsCredentials {
    identity: Identity,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AwsCredentials(<redacted>)")
    }
}

impl AwsCredentials {
    /// The access key id, secret and session token, for scrubbing them from replies that echo
    /// them; never for display.
    pub fn secrets(&self) -> impl Iterator<Item = &str> + Clone {
        self.identity.data::<Credentials>().into_iter().flat_map(|c| {
            [Some(c.access_key_id()), Some(c.secret_access_key()), c.session_token()]
                .into_iter()
                .flatten()
        })
    }

    /// Static credentials: an access key id, its secret, and a session token for temporary ones.
    pub fn new(access_key: &str, secret_key: &str, session_token: Option<&str>) -> AwsCredentials {
        let credentials = Credentials::new(
            access_key,
            secret_key,
            session_token.filter(|t| !t.is_empty()).map(str::to_string),
            None,
            "asbru-config",
        );
        AwsCredentials {
            identity: credentials.into(),
        }
    }
}

/// Why a request could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the request could not be signed: {0}")]
pub struct SignError(String);

/// What is signed.
#[derive(Debug, Clone, Copy)]
pub struct SignInput<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// The full URL: scheme, host (with a port other than the scheme's), path and query, as sent.
    pub url: &'a str,
    /// Headers to sign besides `host` (which comes from the URL), e.g. `content-type`.
    pub headers: &'a [(&'a str, &'a str)],
    /// The exact body bytes sent.
    pub body: &'a [u8],
    /// The region.
    pub region: &'a str,
    /// The service name ([`SERVICE`] for Bedrock).
    pub service: &'a str,
    /// The signing time.
    pub time: SystemTime,
    /// Also send (and sign) `x-amz-content-sha256`, as S3-style services want.
    pub content_sha256_header: bool,
}

/// Signs a request with SigV4: the headers to add (`authorization`, `x-amz-date`, and
/// `x-amz-security-token` for temporary credentials).
pub fn sign(credentials: &AwsCredentials, input: &SignInput<'_>) -> Result<Vec<(&'static str, String)>, SignError> {
    let mut settings = SigningSettings::default();
    if input.content_sha256_header {
        settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
    }
    let params = v4::SigningParams::builder()
        .identity(&credentials.identity)
        .region(input.region)
        .name(input.service)
        .time(input.time)
        .settings(settings)
        .build()
        .map_err(|e| SignError(e.to_string()))?
        .into();
    let request = SignableRequest::new(
        input.method,
        input.url,
        input.headers.iter().copied(),
        SignableBody::Bytes(input.body),
    )
    .map_err(|e| SignError(e.to_string()))?;
    let (instructions, _signature) = sigv4_sign(request, &params)
        .map_err(|e| SignError(e.to_string()))?
        .into_parts();
    let (headers, _query) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|header| (header.name(), header.value().to_string()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// The AWS SigV4 test suite's credentials and time (`aws-sig-v4-test-suite`, published
    /// with the AWS SDKs): 2015-08-30T12:36:00Z, us-east-1, service `service`.
    fn suite() -> (AwsCredentials, SystemTime) {
        (
            AwsCredentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None),
            UNIX_EPOCH + Duration::from_secs(1_440_938_160),
        )
    }

    fn authorization<'a>(headers: &'a [(&'static str, String)]) -> &'a str {
        headers
            .iter()
            .find(|(name, _)| *name == "authorization")
            .map(|(_, value)| value.as_str())
            .unwrap_or_default()
    }

    fn input<'a>(method: &'a str, url: &'a str, headers: &'a [(&'a str, &'a str)], body: &'a [u8]) -> SignInput<'a> {
        SignInput {
            method,
            url,
            headers,
            body,
            region: "us-east-1",
            service: "service",
            time: suite().1,
            content_sha256_header: false,
        }
    }

    #[test]
    fn test_suite_vectors() {
        let (credentials, _) = suite();
        // get-vanilla
        let signed = sign(&credentials, &input("GET", "https://example.amazonaws.com/", &[], b"")).expect("signed");
        assert_eq!(
            authorization(&signed),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        assert!(
            signed
                .iter()
                .any(|(n, v)| *n == "x-amz-date" && v == "20150830T123600Z")
        );
        // post-vanilla
        let signed = sign(&credentials, &input("POST", "https://example.amazonaws.com/", &[], b"")).expect("signed");
        assert_eq!(
            authorization(&signed),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
        // post-x-www-form-urlencoded: a signed body, with its hash in a header.
        let headers = [
            ("content-type", "application/x-www-form-urlencoded"),
            ("content-length", "13"),
        ];
        let mut with_body = input("POST", "https://example.amazonaws.com/", &headers, b"Param1=value1");
        with_body.content_sha256_header = true;
        let signed = sign(&credentials, &with_body).expect("signed");
        assert_eq!(
            authorization(&signed),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, Signature=d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b"
        );
    }

    /// A Converse call on an inference-profile ARN with temporary credentials, as botocore's
    /// `SigV4Auth` signs it (botocore 1.x, service `bedrock`, 2025-01-02T03:04:05Z): the model
    /// id is encoded once in the path and twice in the canonical request, and the session token
    /// is signed.
    #[test]
    fn matches_botocore_for_an_arn_path_and_a_session_token() {
        let credentials = AwsCredentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("session-token-1"),
        );
        let path = path(
            "",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
            RequestType::ChatCompletion,
            false,
        )
        .expect("a path");
        let url = format!("https://bedrock-runtime.us-east-1.amazonaws.com{path}");
        let signed = sign(
            &credentials,
            &SignInput {
                method: "POST",
                url: &url,
                headers: &[
                    ("host", "bedrock-runtime.us-east-1.amazonaws.com"),
                    ("content-type", "application/json"),
                ],
                body: br#"{"messages":[{"role":"user","content":[{"text":"hi"}]}]}"#,
                region: "us-east-1",
                service: SERVICE,
                time: UNIX_EPOCH + Duration::from_secs(1_735_787_045),
                content_sha256_header: false,
            },
        )
        .expect("signed");
        assert_eq!(
            authorization(&signed),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250102/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature=81b6c3508cff5d8f8daf3913309dfdf022b4f2e9b6bcb337ef57f389408aa5ab"
        );
    }

    #[test]
    fn session_tokens_are_sent_and_bodies_change_the_signature() {
        let (_, time) = suite();
        let temporary = AwsCredentials::new("AKID", "secret", Some("token-1"));
        let at = |body: &'static [u8]| SignInput {
            method: "POST",
            url: "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse",
            headers: &[("content-type", "application/json")],
            body,
            region: "us-east-1",
            service: SERVICE,
            time,
            content_sha256_header: false,
        };
        let one = sign(&temporary, &at(b"{\"a\":1}")).expect("signed");
        let two = sign(&temporary, &at(b"{\"a\":2}")).expect("signed");
        assert!(one.iter().any(|(n, v)| *n == "x-amz-security-token" && v == "token-1"));
        assert_ne!(authorization(&one), authorization(&two));
        assert!(authorization(&one).contains("/us-east-1/bedrock/aws4_request"));
        assert!(format!("{temporary:?}").contains("redacted"));
    }

    #[test]
    fn paths_encode_the_model_as_one_segment() {
        assert_eq!(
            path(
                "",
                "anthropic.claude-3-haiku-20240307-v1:0",
                RequestType::ChatCompletion,
                false
            )
            .as_deref(),
            Some("/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse")
        );
        assert_eq!(
            path("/x", "us.meta.llama3", RequestType::ChatCompletion, true).as_deref(),
            Some("/x/model/us.meta.llama3/converse-stream")
        );
        let arn = "arn:aws:bedrock:us-east-1:123:inference-profile/us.anthropic.claude";
        assert_eq!(
            path("", arn, RequestType::Embedding, false).as_deref(),
            Some("/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fus.anthropic.claude/invoke")
        );
        assert_eq!(path("", "m", RequestType::ListModels, false), None);
        assert_eq!(
            model_id(Some("arn:aws:bedrock:us-east-1:1:application-inference-profile"), "m"),
            "arn:aws:bedrock:us-east-1:1:application-inference-profile/m"
        );
        assert_eq!(model_id(None, "m"), "m");
        assert_eq!(model_segment(".."), "%2E%2E");
        assert_eq!(
            invoke_path("", "us.anthropic.claude-sonnet-4-20250514-v1:0", true),
            "/model/us.anthropic.claude-sonnet-4-20250514-v1%3A0/invoke-with-response-stream"
        );
        assert!(invokes_messages("anthropic.claude-3-haiku") && !invokes_messages("meta.llama3"));
        let body = anthropic_body(br#"{"model":"m","stream":true,"max_tokens":5,"messages":[]}"#).expect("object");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["anthropic_version"], ANTHROPIC_VERSION);
        assert!(json.get("model").is_none() && json.get("stream").is_none());
        assert_eq!(json["max_tokens"], 5);
        assert_eq!(base_url("eu-west-1"), "https://bedrock-runtime.eu-west-1.amazonaws.com");
    }
}
