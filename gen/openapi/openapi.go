// Package openapi embeds the OpenAPI v2 document of the loopgate REST API,
// generated from proto/loopgate/v1 by protoc-gen-openapiv2 (`make generate`).
//
// This file is copied from scripts/gen/openapi.go.in by `make generate`
// (buf empties gen/ before generating); edit it there.
package openapi

import _ "embed"

// Spec is the OpenAPI v2 (Swagger) document, JSON, for every service of
// loopgate.v1 merged into one file.
//
//go:embed loopgate.swagger.json
var Spec []byte
