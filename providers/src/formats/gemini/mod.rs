//! Google Gemini's `generateContent` wire (the Gemini API, and Gemini models on Vertex AI).

pub mod types;
