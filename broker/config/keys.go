package config

import (
	"sort"
	"strings"
)

// Section names. Topic sections are "topic=<name>".
const (
	sectionSystem      = "system"
	sectionZooKeeper   = "zookeeper"
	sectionReplication = "replication"
	sectionSecurity    = "security"
	topicPrefix        = "topic="
)

// Canonical key names (MetaQ spelling). Matching is case-insensitive.
const (
	keyBrokerID              = "brokerId"
	keyHostName              = "hostName"
	keyServerPort            = "serverPort"
	keyNumPartitions         = "numPartitions"
	keyDataPath              = "dataPath"
	keyDataLogPath           = "dataLogPath"
	keyUnflushThreshold      = "unflushThreshold"
	keyUnflushInterval       = "unflushInterval"
	keyMaxSegmentSize        = "maxSegmentSize"
	keyMaxTransferSize       = "maxTransferSize"
	keyMaxMessageSize        = "maxMessageSize"
	keyDeletePolicy          = "deletePolicy"
	keyDeleteWhen            = "deleteWhen"
	keyAcceptPublish         = "acceptPublish"
	keyAcceptSubscribe       = "acceptSubscribe"
	keyStat                  = "stat"
	keyUpdateConsumerOffsets = "updateConsumerOffsets"
	keyMaxTxTimeoutInSeconds = "maxTxTimeoutInSeconds"
	keyFlushTxLogAtCommit    = "flushTxLogAtCommit"

	// Ours.
	keyAutoCreateTopics         = "autoCreateTopics"
	keyMaxConnections           = "maxConnections"
	keyIdleTimeoutMs            = "idleTimeoutMs"
	keyMaxLineLength            = "maxLineLength"
	keyRetentionBytes           = "retentionBytes"
	keyRetentionCheckIntervalMs = "retentionCheckIntervalMs"
	keyAdminPort                = "adminPort"
	keyAdminHost                = "adminHost"
	keyMulticore                = "multicore"
	keyMaxConnectionsPerIP      = "maxConnectionsPerIp"
	keyPartialRequestTimeoutMs  = "partialRequestTimeoutMs"
	keyMaxConnOutputBytes       = "maxConnectionOutputBytes"
	keyMaxTotalOutputBytes      = "maxTotalOutputBytes"
	keyReadWorkers              = "readWorkers"
	keyCommitLog                = "commitLog"

	// Ours: transaction limits and the expiry of prepared XA transactions.
	keyMaxTransactionsPerConnection = "maxTransactionsPerConnection"
	keyMaxTransactions              = "maxTransactions"
	keyXAHeuristicTimeoutSeconds    = "xaHeuristicTimeoutSeconds"

	// [replication] (slaveId and slaveMaxDelayInMills are MetaQ's spelling).
	keySlaveID              = "slaveId"
	keyReplicationMode      = "mode"
	keyServeReads           = "serveReads"
	keyMinSyncSlaves        = "minSyncSlaves"
	keySlaveMaxDelayInMills = "slaveMaxDelayInMills"
	keyMasterAddr           = "masterAddr"

	// [security]: wire authentication and authorisation (docs/SECURITY.md).
	keyUsersFile      = "usersFile"
	keyACLFile        = "aclFile"
	keyAllowAnonymous = "allowAnonymous"

	keyZkEnable              = "zk.zkEnable"
	keyZkConnect             = "zk.zkConnect"
	keyZkRoot                = "zk.zkRoot"
	keyZkSessionTimeoutMs    = "zk.zkSessionTimeoutMs"
	keyZkConnectionTimeoutMs = "zk.zkConnectionTimeoutMs"
	keyZkSyncTimeMs          = "zk.zkSyncTimeMs"
	keyZkStaleNodeGraceMs    = "zk.zkStaleNodeGraceMs"
	keyZkAuth                = "zk.zkAuth"
	keyZkAuthFile            = "zk.zkAuthFile"
)

// systemKeys are the keys of [system]; topicKeys those a [topic=...] section may override
// (their [system] values are the defaults for every topic).
var (
	systemKeys = []string{
		keyBrokerID, keyHostName, keyServerPort, keyNumPartitions, keyDataPath, keyDataLogPath,
		keyUnflushThreshold, keyUnflushInterval, keyMaxSegmentSize, keyMaxTransferSize,
		keyMaxMessageSize, keyDeletePolicy, keyDeleteWhen, keyAcceptPublish, keyAcceptSubscribe,
		keyStat, keyUpdateConsumerOffsets, keyMaxTxTimeoutInSeconds, keyFlushTxLogAtCommit,
		keyAutoCreateTopics, keyMaxConnections, keyIdleTimeoutMs, keyMaxLineLength,
		keyRetentionBytes, keyRetentionCheckIntervalMs, keyAdminPort, keyAdminHost, keyMulticore,
		keyMaxConnectionsPerIP, keyPartialRequestTimeoutMs, keyMaxConnOutputBytes,
		keyMaxTotalOutputBytes, keyReadWorkers, keyCommitLog,
		// Transaction limits.
		keyMaxTransactionsPerConnection, keyMaxTransactions, keyXAHeuristicTimeoutSeconds,
	}
	zookeeperKeys = []string{
		keyZkEnable, keyZkConnect, keyZkRoot, keyZkSessionTimeoutMs, keyZkConnectionTimeoutMs,
		keyZkSyncTimeMs, keyZkStaleNodeGraceMs, keyZkAuth, keyZkAuthFile,
	}
	replicationKeys = []string{
		keySlaveID, keyReplicationMode, keyServeReads, keyMinSyncSlaves, keySlaveMaxDelayInMills,
		keyMasterAddr,
	}
	// securityKeys: [security]; TLS, the admin port's token, users and ACLs
	// (security.go), a slave's connection to its master (security_client.go).
	securityKeys = []string{
		keyTLSCertFile, keyTLSKeyFile, keyTLSClientCAFile, keyAdminTokenFile, keyPlaintextPort,
		keyUsersFile, keyACLFile, keyAllowAnonymous,
		keyBrokerUser, keyBrokerPasswordFile, keyTLSCAFile,
	}
	topicKeys = []string{
		keyNumPartitions, keyStat, keyDeletePolicy, keyDeleteWhen, keyDataPath,
		keyUnflushInterval, keyUnflushThreshold, keyAcceptPublish, keyAcceptSubscribe,
		keyRetentionBytes,
	}
)

// MetaQ-only keys that an unchanged MetaQ server.ini may contain. They are accepted
// and ignored with a warning: they tune Java thread pools, Quartz, the transaction
// checkpointer, the dashboard or diamond, none of which exist here.
var (
	ignoredSystemKeys = []string{
		"getProcessThreadCount", "putProcessThreadCount", "quartzThreadCount",
		"maxCheckpoints", "checkpointInterval", "maxTxTimeoutTimerCapacity",
		"loadMessageStoresInParallel", "dashboardHttpPort", "appClassPath",
	}
	ignoredZooKeeperKeys = []string{"diamondZKDataId", "diamondZKGroup"}
	// ignoredTopicKeyPrefix: "group.<consumerGroup>=<filter class>" (MetaQ server-side
	// consumer message filters, Java classes).
	ignoredTopicKeyPrefix = "group."
)

// keySet maps lower-case key → canonical key.
type keySet map[string]string

func newKeySet(keys ...[]string) keySet {
	s := keySet{}
	for _, list := range keys {
		for _, k := range list {
			s[strings.ToLower(k)] = k
		}
	}
	return s
}

// canonical returns the canonical spelling of key, if valid.
func (s keySet) canonical(key string) (string, bool) {
	c, ok := s[strings.ToLower(key)]
	return c, ok
}

// nearest returns the valid key closest to key by edit distance (case-insensitive), or ""
// when nothing is close enough to be a plausible typo.
func (s keySet) nearest(key string) string {
	names := make([]string, 0, len(s))
	for _, c := range s {
		names = append(names, c)
	}
	sort.Strings(names) // deterministic tie-breaking
	return nearestOf(key, names)
}

func nearestOf(key string, names []string) string {
	best, bestDist := "", -1
	lk := strings.ToLower(key)
	for _, n := range names {
		d := levenshtein(lk, strings.ToLower(n))
		if bestDist < 0 || d < bestDist {
			best, bestDist = n, d
		}
	}
	// Plausible typo: at most a third of the longer name differs (min 2 edits).
	limit := max(2, max(len(lk), len(best))/3)
	if bestDist < 0 || bestDist > limit {
		return ""
	}
	return best
}

// levenshtein is the classic edit distance over bytes, two rows.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
