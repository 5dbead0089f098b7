// Package awsconf loads the AWS SDK configuration shared by the connectors
// that talk to AWS services (Kinesis, S3): the standard credential chain
// (environment, shared files and profiles, web identity, container and
// instance roles), the region, and an endpoint override for local servers
// and compatible services.
package awsconf
