# Thin wrappers; the scripts are the source of truth.
.PHONY: test build cluster stop zk bench

build:
	go build -o metaq ./tools/metaq

test:
	scripts/test.sh

cluster:
	scripts/cluster.sh start

stop:
	scripts/cluster.sh stop

zk:
	scripts/zk.sh start
