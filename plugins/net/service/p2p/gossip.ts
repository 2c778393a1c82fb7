import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { Logger } from '../../../../core/log.js'
import type { FormLibp2p } from '../../lib/p2p/host.js'
import type { P2PHandle } from '../p2p.js'

type PubSub = Pick<FormLibp2p['services']['pubsub'], 'topicValidators' | 'subscribe' | 'unsubscribe' | 'publish'>
const verdicts = { accept: TopicValidatorResult.Accept, ignore: TopicValidatorResult.Ignore, reject: TopicValidatorResult.Reject }

/**
 * Takes part in a gossip topic: each message is judged by `validate` before it is passed on; a
 * banned peer's messages are rejected unjudged, and one the validator fails on is ignored.
 */
export function joinTopic(pubsub: PubSub, isBanned: (id: string) => boolean, log: Logger, topic: string, validate: Parameters<P2PHandle['gossip']>[1]): ReturnType<P2PHandle['gossip']> {
  pubsub.topicValidators.set(topic, async (peer, message) => {
    if (isBanned(peer.toString())) return TopicValidatorResult.Reject
    try {
      return verdicts[await validate(message.data, peer.toString())]
    } catch (error) {
      log.warn('a gossip message could not be judged', { topic, peer: peer.toString(), error: (error as Error).message })
      return TopicValidatorResult.Ignore
    }
  })
  pubsub.subscribe(topic)
  return {
    publish: async (data) => void (await pubsub.publish(topic, data)),
    stop: () => {
      pubsub.unsubscribe(topic)
      pubsub.topicValidators.delete(topic)
    },
  }
}
