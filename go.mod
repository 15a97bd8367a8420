module github.com/kvproject/kv

go 1.26.8

require (
	github.com/asaskevich/EventBus v0.0.0-20200907212545-49d423059eef
	github.com/stretchr/testify v1.12.1
	github.com/thejerf/suture/v4 v4.0.6
)

require (
	github.com/prometheus/client_golang v1.25.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)
