/**
 * The adapter's 'batch' commit mode against the real broker: what was handled is committed once
 * per fetched batch, never what was not; a handler that stops mid-batch leaves the handled
 * messages committed and the unfinished one to the next member.
 */
import { expect, it } from 'vitest';
import { StopConsuming, type TopicNames, createKafkajsClient } from '../../services/messaging/index.ts';
import { describeKafka, eventually, testKafka, testLog } from '../support/kafka.ts';

describeKafka('consumer commit modes', () => {
  async function produce(topics: TopicNames, client: Awaited<ReturnType<typeof testKafka>>['client'], count: number) {
    const producer = await client.producer();
    try {
      // One key: one partition, in order.
      await producer.send(Array.from({ length: count }, (_, i) => ({ topic: topics.reports, key: 'k', value: Buffer.from(String(i)), headers: {} })));
    } finally {
      await producer.close();
    }
  }

  it("'batch' commits what was handled when a handler stops mid-batch, and the next member starts at the one it did not finish", async () => {
    const kafka = await testKafka('commit-batch', 1);
    const groupId = `commit-batch-${Date.now()}`;
    await produce(kafka.topics, kafka.client, 10);
    const seen: string[] = [];
    const consumer = await kafka.client.consumer({ groupId, topics: [kafka.topics.reports], fromBeginning: true, commit: 'batch' });
    await consumer.run({
      eachMessage: async (message) => {
        const value = message.value?.toString() ?? '';
        // The consumer is closing: 6 is left unfinished, as a daemon or a control plane would.
        if (value === '6') throw new StopConsuming('closing');
        seen.push(value);
      },
    });
    const admin = await kafka.client.admin();
    try {
      await eventually('0 to 5 handled, and committed though the batch never ended', async () =>
        seen.length === 6 && (await admin.committedOffsets(groupId, kafka.topics.reports)).get(0) === '6' ? true : undefined,
      );
      await consumer.close();
      const rest: string[] = [];
      const next = await createKafkajsClient({ ...kafka.config, clientId: 'vcp-test-commit-next' }, testLog, { connectionTimeoutMs: 10_000 }).consumer({
        groupId,
        topics: [kafka.topics.reports],
        fromBeginning: true,
        commit: 'batch',
      });
      try {
        await next.run({ eachMessage: async (m) => void rest.push(m.value?.toString() ?? '') });
        await eventually('6 to 9', () => (rest.length >= 4 ? true : undefined));
        expect(rest).toEqual(['6', '7', '8', '9']);
      } finally {
        await next.close();
      }
    } finally {
      await consumer.close();
      await admin.close();
    }
  });

  it("a fresh member of the group starts after what 'batch' committed", async () => {
    const kafka = await testKafka('commit-resume', 1);
    const groupId = `commit-resume-${Date.now()}`;
    await produce(kafka.topics, kafka.client, 5);
    const first: string[] = [];
    const consumer = await kafka.client.consumer({ groupId, topics: [kafka.topics.reports], fromBeginning: true, commit: 'batch' });
    await consumer.run({ eachMessage: async (m) => void first.push(m.value?.toString() ?? '') });
    await eventually('five handled', () => (first.length === 5 ? true : undefined), 60_000);
    const admin = await kafka.client.admin();
    await eventually('committed after the batch', async () => ((await admin.committedOffsets(groupId, kafka.topics.reports)).get(0) === '5' ? true : undefined), 30_000);
    await consumer.close();
    await produce(kafka.topics, kafka.client, 2);
    const second: string[] = [];
    const again = await createKafkajsClient({ ...kafka.config, clientId: 'vcp-test-commit-2' }, testLog, { connectionTimeoutMs: 10_000 }).consumer({
      groupId,
      topics: [kafka.topics.reports],
      fromBeginning: true,
      commit: 'batch',
    });
    try {
      await again.run({ eachMessage: async (m) => void second.push(m.value?.toString() ?? '') });
      await eventually('the two new ones', () => (second.length >= 2 ? true : undefined), 60_000);
      expect(second).toEqual(['0', '1']);
    } finally {
      await again.close();
      await admin.close();
    }
  });
});
