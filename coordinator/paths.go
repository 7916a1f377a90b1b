// Package coordinator is the MetaQ cluster model on ZooKeeper: where brokers,
// topics, consumer groups and offsets live (this file is the only place paths
// are built), broker registration, the cluster view clients use to find
// brokers and partitions, and consumer-group coordination.
//
// # ZooKeeper layout (PROTOCOL.md §10, REBALANCE.md)
//
// Root zkRoot (default /meta). Data are UTF-8 strings.
//
//	/meta/brokers/ids/<brokerId>                        persistent  master URI (for old clients)
//	/meta/brokers/ids/<brokerId>/master                 ephemeral   meta://host:port
//	/meta/brokers/ids/<brokerId>/master_config_checksum ephemeral   CRC-32 of the config file, decimal
//	/meta/brokers/topics/<topic>/<brokerId>-m           ephemeral   partition count, decimal (Python/Ruby/.NET clients)
//	/meta/brokers/topics-pub/<topic>/<brokerId>-m       ephemeral   {"numParts":N,"broker":"<id>-m"} if acceptPublish
//	/meta/brokers/topics-sub/<topic>/<brokerId>-m       ephemeral   same JSON, if acceptSubscribe
//	/meta/brokers/metaq/accept/<brokerId>               ephemeral   ours: JSON {"topics":[{"pattern","numParts","acceptPublish"}]} (accept.go); MetaQ clients never read it
//	/meta/consumers/<group>/ids/<group>_<consumerId>    ephemeral   MetaQ Java consumers (we refuse to mix with them)
//	/meta/consumers/<group>/members/_c_<guid>-member-<seq>  ephemeral-sequential  our members (JSON)
//	/meta/consumers/<group>/assign[/<memberId>]         persistent  assignment snapshot / per-member assignment
//	/meta/consumers/<group>/owners/<topic>/<brokerId>-<partition>   ephemeral   owner's member id (MetaQ's own node, ours and MetaQ's alike)
//	/meta/consumers/<group>/metaq/fence/<topic>/_c_<guid>-<brokerId>-<partition>  ephemeral  ours: one per claim of a partition, the fencing token of commits (REBALANCE.md)
//	/meta/consumers/<group>/offsets/<topic>/<brokerId>-<partition>  persistent  <msgId>-<offset>
//
// # Replication (docs/REPLICATION.md)
//
// A replica set is one brokerId: member 0 is the configured master, member
// N ≥ 1 the slave with slaveId N. Whoever is master now holds the master node
// above and the topic nodes; every follower N holds slave<N> (MetaQ's name; a
// former master that follows registers slave0). The rest is ours and MetaQ
// clients never read it:
//
//	/meta/brokers/ids/<brokerId>/slave<N>               ephemeral   meta://host:port of follower N
//	/meta/metaq/replication/<brokerId>/epoch            persistent  {"epoch":E,"master":N,"uri":"meta://..."}, CAS on its version
//	/meta/metaq/replication/<brokerId>/isr              persistent  {"epoch":E,"inSync":[N,...]}, written by the master of E (checks the epoch version)
//	/meta/metaq/replication/<brokerId>/election/_c_<guid>-latch-<seq>  ephemeral-sequential  {"member":N,"logEnd":L}
//	/meta/metaq/replication/<brokerId>/promote          persistent  {"member":N,...} planned switchover request
package coordinator

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// DefaultRoot is MetaQ's default zkRoot.
const DefaultRoot = "/meta"

// Paths builds every ZooKeeper path of the cluster under one root.
type Paths struct {
	Root string
}

// NewPaths returns the paths under root ("" means DefaultRoot).
func NewPaths(root string) Paths {
	root = strings.TrimRight(root, "/")
	if root == "" {
		root = DefaultRoot
	}
	return Paths{Root: root}
}

// Brokers is the parent of all broker registrations.
func (p Paths) Brokers() string { return p.Root + "/brokers" }

// BrokerIDs is the parent of broker id nodes.
func (p Paths) BrokerIDs() string { return p.Root + "/brokers/ids" }

// BrokerID is the persistent node of one broker id.
func (p Paths) BrokerID(id int) string { return p.BrokerIDs() + "/" + strconv.Itoa(id) }

// BrokerMaster is the ephemeral node holding a broker master's URI.
func (p Paths) BrokerMaster(id int) string { return p.BrokerID(id) + "/master" }

// BrokerConfigChecksum is the ephemeral node holding the broker's config checksum.
func (p Paths) BrokerConfigChecksum(id int) string { return p.BrokerID(id) + "/master_config_checksum" }

// TopicsLegacy is the parent of the legacy per-topic registrations.
func (p Paths) TopicsLegacy() string { return p.Root + "/brokers/topics" }

// TopicsPub is the parent of per-topic publish registrations.
func (p Paths) TopicsPub() string { return p.Root + "/brokers/topics-pub" }

// TopicsSub is the parent of per-topic subscribe registrations.
func (p Paths) TopicsSub() string { return p.Root + "/brokers/topics-sub" }

// MasterName is the name of a master's node under a topic: "<brokerId>-m".
func MasterName(brokerID int) string { return strconv.Itoa(brokerID) + "-m" }

// ParseBrokerNodeName parses "<brokerId>-m" or "<brokerId>-s<n>" and reports
// whether it names a master.
func ParseBrokerNodeName(name string) (brokerID int, master bool, err error) {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 {
		return 0, false, fmt.Errorf("coordinator: %q is not <brokerId>-m or <brokerId>-s<n>", name)
	}
	id, err := strconv.Atoi(name[:i])
	if err != nil || id < 0 {
		return 0, false, fmt.Errorf("coordinator: %q has no broker id", name)
	}
	return id, name[i+1:] == "m", nil
}

// TopicLegacyDir is the parent of a topic's legacy registrations.
func (p Paths) TopicLegacyDir(topic string) string { return p.TopicsLegacy() + "/" + topic }

// TopicPubDir is the parent of a topic's publish registrations.
func (p Paths) TopicPubDir(topic string) string { return p.TopicsPub() + "/" + topic }

// TopicLegacy is the legacy registration of topic on a broker.
func (p Paths) TopicLegacy(topic string, brokerID int) string {
	return p.TopicsLegacy() + "/" + topic + "/" + MasterName(brokerID)
}

// TopicPub is the publish registration of topic on a broker.
func (p Paths) TopicPub(topic string, brokerID int) string {
	return p.TopicsPub() + "/" + topic + "/" + MasterName(brokerID)
}

// TopicSub is the subscribe registration of topic on a broker.
func (p Paths) TopicSub(topic string, brokerID int) string {
	return p.TopicsSub() + "/" + topic + "/" + MasterName(brokerID)
}

// BrokerAcceptsDir is the parent of the brokers' accepted-topics nodes, under
// brokers/metaq/: a subtree of ours that no MetaQ client lists or reads.
func (p Paths) BrokerAcceptsDir() string { return p.Root + "/brokers/metaq/accept" }

// BrokerAccepts is the ephemeral node where a broker publishes the topics it
// accepts before they are registered (coordinator/accept.go).
func (p Paths) BrokerAccepts(id int) string { return p.BrokerAcceptsDir() + "/" + strconv.Itoa(id) }

// Consumers is the parent of all consumer groups.
func (p Paths) Consumers() string { return p.Root + "/consumers" }

// Group is a consumer group's root.
func (p Paths) Group(group string) string { return p.Consumers() + "/" + group }

// GroupMetaQIDs is where MetaQ Java consumers register.
func (p Paths) GroupMetaQIDs(group string) string { return p.Group(group) + "/ids" }

// GroupMembers is where our members register.
func (p Paths) GroupMembers(group string) string { return p.Group(group) + "/members" }

// GroupAssign is the assignment snapshot node.
func (p Paths) GroupAssign(group string) string { return p.Group(group) + "/assign" }

// GroupMemberAssign is one member's assignment node.
func (p Paths) GroupMemberAssign(group, memberID string) string {
	return p.GroupAssign(group) + "/" + memberID
}

// PartitionName is "<brokerId>-<partition>", the name MetaQ uses for a partition.
func PartitionName(brokerID, partition int) string {
	return strconv.Itoa(brokerID) + "-" + strconv.Itoa(partition)
}

// ParsePartitionName parses "<brokerId>-<partition>".
func ParsePartitionName(name string) (brokerID, partition int, err error) {
	b, pt, ok := strings.Cut(name, "-")
	if ok {
		if brokerID, err = strconv.Atoi(b); err == nil {
			if partition, err = strconv.Atoi(pt); err == nil && brokerID >= 0 && partition >= 0 {
				return brokerID, partition, nil
			}
		}
	}
	return 0, 0, fmt.Errorf("coordinator: %q is not <brokerId>-<partition>", name)
}

// GroupOwners is the parent of a topic's owner nodes.
func (p Paths) GroupOwners(group, topic string) string { return p.Group(group) + "/owners/" + topic }

// GroupOwner is the owner node of one partition: exactly MetaQ's, an
// ephemeral node whose data is the owner's id, created by the member that
// takes the partition and deleted when it lets go. Nothing else may live
// under owners/<topic>/: MetaQ's consumers claim a partition by creating
// this node and fail while any node is there.
func (p Paths) GroupOwner(group, topic string, brokerID, partition int) string {
	return p.GroupOwners(group, topic) + "/" + PartitionName(brokerID, partition)
}

// GroupFences is the parent of a topic's fence nodes: ours, under the
// group's metaq/ subtree that MetaQ's consumers never read. A member that
// takes a partition creates one (protected, so unique per claim) after its
// owner node; every offset commit checks it exists, so a member whose
// session ended cannot commit even after a new owner re-created the
// same-named owner node (whose version starts at 0 again).
func (p Paths) GroupFences(group, topic string) string {
	return p.Group(group) + "/metaq/fence/" + topic
}

// GroupOffsets is the parent of a topic's offset nodes.
func (p Paths) GroupOffsets(group, topic string) string { return p.Group(group) + "/offsets/" + topic }

// GroupOffset is the offset node of one partition.
func (p Paths) GroupOffset(group, topic string, brokerID, partition int) string {
	return p.GroupOffsets(group, topic) + "/" + PartitionName(brokerID, partition)
}

// Base returns the last element of a path.
func Base(p string) string { return path.Base(p) }

// TopicSubDir is the parent of a topic's subscribe registrations (one node per broker).
func (p Paths) TopicSubDir(topic string) string { return p.TopicsSub() + "/" + topic }

// GroupOwnersRoot is the parent of every topic's owner nodes.
func (p Paths) GroupOwnersRoot(group string) string { return p.Group(group) + "/owners" }

// GroupOffsetsRoot is the parent of every topic's offset nodes.
func (p Paths) GroupOffsetsRoot(group string) string { return p.Group(group) + "/offsets" }

// MemberNodeName is the name (before the protected prefix and the sequence)
// of a member node: members/_c_<guid>-member-<seq10>.
const MemberNodeName = "member-"

// Replication paths (ours, see the layout in the package comment).

// BrokerSlave is the ephemeral node of follower member of broker id: ".../slave<member>".
func (p Paths) BrokerSlave(id, member int) string {
	return p.BrokerID(id) + "/" + SlaveNodePrefix + strconv.Itoa(member)
}

// SlaveNodePrefix starts the name of a follower's node under /brokers/ids/<brokerId>.
const SlaveNodePrefix = "slave"

// ParseSlaveNodeName parses "slave<N>" and reports whether name is one.
func ParseSlaveNodeName(name string) (member int, ok bool) {
	rest, found := strings.CutPrefix(name, SlaveNodePrefix)
	if !found || rest == "" {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || strconv.Itoa(n) != rest {
		return 0, false
	}
	return n, true
}

// MetaQRoot is the parent of the cluster-wide state that is ours (MetaQ
// clients never read it): replication.
func (p Paths) MetaQRoot() string { return p.Root + "/metaq" }

// ReplicationRoot is the parent of every replica set's replication state.
func (p Paths) ReplicationRoot() string { return p.MetaQRoot() + "/replication" }

// Replication is the replication state of broker id.
func (p Paths) Replication(id int) string { return p.ReplicationRoot() + "/" + strconv.Itoa(id) }

// ReplicationEpoch is the epoch node of broker id.
func (p Paths) ReplicationEpoch(id int) string { return p.Replication(id) + "/epoch" }

// ReplicationISR is the in-sync-set node of broker id.
func (p Paths) ReplicationISR(id int) string { return p.Replication(id) + "/isr" }

// ReplicationElection is the election directory of broker id.
func (p Paths) ReplicationElection(id int) string { return p.Replication(id) + "/election" }

// ReplicationPromote is the planned-switchover request node of broker id.
func (p Paths) ReplicationPromote(id int) string { return p.Replication(id) + "/promote" }
